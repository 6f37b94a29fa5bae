package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/updater"
)

// The images of TestAppAndDatabase, built by make test: Debian's Redis
// (scripts/build-rootfs-images.sh redis) and an app that connects to it at
// start-up and counts every request in it (scripts/build-images.sh
// redisapp), v1 good, v2 exiting at start.
const (
	redisImage  = "localhost/lazypod-redis:latest"
	redisAppV1  = "localhost/lazypod-redisapp:v1"
	redisAppBad = "localhost/lazypod-redisapp:v2"
)

// TestAppAndDatabase runs an app and its database, each a lazy service,
// under real systemd, as README's "An app and its database" writes them:
// the database's socket is a unix socket the app's container mounts, and
// the app's definition says Needs= the database. It shows:
//   - the first request starts the database, then the app, which connects
//     to it at start-up (refused, it would exit), and is answered; the
//     cold start of both is measured;
//   - the idle stop stops the app, then the database, with nothing left
//     running;
//   - the second activation finds the count the first one wrote, kept in
//     the database's volume;
//   - a broken app image is rolled back within its activation, answered
//     by the previous image, while the database keeps its container and
//     its data.
func TestAppAndDatabase(t *testing.T) {
	e := needE2E(t)
	for _, img := range []string{redisImage, redisAppV1, redisAppBad} {
		if err := exec.Command("podman", "--remote", "--url", e.podmanURL, "image", "exists", img).Run(); err != nil {
			t.Fatalf("image %s is missing: make test builds it (scripts/build-rootfs-images.sh redis, scripts/build-images.sh redisapp)", img)
		}
	}
	name := fmt.Sprintf("lzdb-%d", os.Getpid())
	db, app := name+"-db", name+"-app"
	dbCtr, appCtr := "systemd-"+db, "systemd-"+app
	appRef := "localhost/" + app + ":latest"
	volume := name + "-data"
	// The database's socket lives here, bound into the machine at the same
	// path, so that the container the host's Podman makes for the app
	// mounts the socket systemd listens on in the machine.
	share := filepath.Join("/run", name)
	sockDir := share + "/db"
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, args := range [][]string{{"rm", "-f", "-t", "0", appCtr, dbCtr, app + ".lazypod-pin"}, {"volume", "rm", "-f", volume}, {"rmi", "-f", appRef}} {
			exec.Command("podman", append([]string{"--remote", "--url", e.podmanURL}, args...)...).Run()
		}
		os.RemoveAll(share)
	})
	e.podman(t, "tag", redisAppV1, appRef)
	port := freePorts(t, 1)[0]
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)

	defs := t.TempDir()
	files := map[string]string{
		db + ".lazypod": fmt.Sprintf("[Container]\nImage=%s\nVolume=%s:/data\n\n[Lazypod]\nListenUnix=%s/redis.sock:6379\nIdleTimeout=3s\n",
			redisImage, volume, sockDir),
		app + ".lazypod": fmt.Sprintf("[Container]\nImage=%s\nPublishPort=127.0.0.1:%d:8080\nVolume=%s:/run/redis\nEnvironment=REDIS_SOCKET=/run/redis/redis.sock\nAutoUpdate=local\n\n"+
			"[Lazypod]\nNeeds=%s\nIdleTimeout=3s\nReady=http:/healthz\n", appRef, port, sockDir, db),
	}
	unitDir := t.TempDir()
	for f, text := range files {
		p := filepath.Join(defs, f)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(e.bin, "units", "generate", "--output", unitDir, "--bin", "/usr/local/bin/lazypod", p).CombinedOutput(); err != nil {
			t.Fatalf("lazypod units generate %s: %v\n%s", f, err, out)
		}
	}

	m := needMachine(t, e, name, share)
	t.Cleanup(func() {
		if m.stopped {
			return
		}
		if t.Failed() {
			t.Logf("the machine's journal:\n%s", m.journal(app+".service", db+".service", app+".socket", db+".socket", db+"-hold.socket"))
		}
		m.exec("systemctl", "stop", app+".socket", db+".socket", db+"-hold.socket", app+".service", db+".service")
	})
	entries, err := os.ReadDir(unitDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		b, err := os.ReadFile(filepath.Join(unitDir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m.writeFile(t, "/etc/systemd/system/"+ent.Name(), b)
	}
	m.run(t, "systemctl", "daemon-reload")
	m.run(t, "systemctl", "start", db+".socket", app+".socket")
	if r := runningContainers(t, e, appCtr) + runningContainers(t, e, dbCtr); r != "" {
		t.Fatalf("containers running before the first request: %s", r)
	}

	// The first request: the database, then the app.
	began := time.Now()
	body, err := httpGet(t, url)
	cold := time.Since(began)
	if err != nil || body != "v1 hits 1\n" {
		t.Fatalf("first request: %q, %v; want v1 hits 1", body, err)
	}
	t.Logf("first request, both containers cold: answered in %s (%s)", cold.Round(time.Millisecond), coldStarts(t, m, 1, db, app))
	dbStarted, appStarted := e.podman(t, "inspect", "--format", "{{.State.StartedAt}}", dbCtr), e.podman(t, "inspect", "--format", "{{.State.StartedAt}}", appCtr)
	if !before(t, dbStarted, appStarted) {
		t.Errorf("the database started at %s, the app at %s; want the database first", dbStarted, appStarted)
	}
	dbID := e.podman(t, "inspect", "--format", "{{.Id}}", dbCtr)

	// The idle stop: the app, then the database; nothing left running.
	waitIdle(t, m, e, app, db, appCtr, dbCtr)
	appDone, dbDone := e.podman(t, "inspect", "--format", "{{.State.FinishedAt}}", appCtr), e.podman(t, "inspect", "--format", "{{.State.FinishedAt}}", dbCtr)
	if !before(t, appDone, dbDone) {
		t.Errorf("the app stopped at %s, the database at %s; want the app first", appDone, dbDone)
	}

	// The second activation finds the first one's count.
	began = time.Now()
	if body, err := httpGet(t, url); err != nil || body != "v1 hits 2\n" {
		t.Fatalf("second activation: %q, %v; want v1 hits 2, the count the first one kept", body, err)
	}
	t.Logf("second activation, both containers stopped: answered in %s (%s)", time.Since(began).Round(time.Millisecond), coldStarts(t, m, 2, db, app))
	waitIdle(t, m, e, app, db, appCtr, dbCtr)

	// A broken app image: rolled back within the activation, the database
	// untouched.
	e.podman(t, "tag", redisAppBad, appRef)
	if body, err := httpGet(t, url); err != nil || body != "v1 hits 3\n" {
		t.Fatalf("activation with the broken app image: %q, %v; want v1 hits 3 from the rolled-back app", body, err)
	}
	for _, s := range statuses(t, m, app, db) {
		switch s.Name {
		case app:
			if s.LastUpdateResult != updater.ResultRolledBack || len(s.FailedDigests) != 1 {
				t.Errorf("app's status after the broken image: %+v; want rolled back, its digest failed", s)
			}
		case db:
			if s.LastUpdateResult != "" || len(s.FailedDigests) != 0 {
				t.Errorf("database's status after the app's rollback: %+v; want no update of its own", s)
			}
		}
	}
	if id := e.podman(t, "inspect", "--format", "{{.Id}}", dbCtr); id != dbID {
		t.Errorf("the database's container changed (%s, was %s); want the same container throughout", id, dbID)
	}
	waitIdle(t, m, e, app, db, appCtr, dbCtr)
}

// statuses returns lazypod status's rows of the services, read in the
// machine.
func statuses(t *testing.T, m *machine, names ...string) []updater.Status {
	t.Helper()
	var st []updater.Status
	out := m.run(t, append([]string{"lazypod", "status", "--format", "json"}, names...)...)
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != len(names) {
		t.Fatalf("lazypod status: %v\n%s", err, out)
	}
	return st
}

// coldStarts says the cold start of each service's nth start, from its
// journal's nth "container ready" line: its own start, from stopped to
// ready (the app's after the database was ready). It waits up to 10s for
// the journal.
func coldStarts(t *testing.T, m *machine, n int, names ...string) string {
	t.Helper()
	took := regexp.MustCompile(`msg="container ready" .* took=(\S+)`)
	var parts []string
	for _, name := range names {
		var ready [][]string
		for range 100 {
			out, _ := m.exec("journalctl", "--no-pager", "-o", "cat", "-u", name+".service")
			if ready = took.FindAllStringSubmatch(out, -1); len(ready) >= n {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(ready) < n {
			t.Fatalf("%s.service's journal has %d \"container ready\" lines; want %d", name, len(ready), n)
		}
		parts = append(parts, name+" "+ready[n-1][1])
	}
	return strings.Join(parts, ", ")
}

// waitIdle waits until the app's and the database's services have gone
// back to inactive after their idle stops, and checks that nothing of
// theirs still runs.
func waitIdle(t *testing.T, m *machine, e e2eEnv, app, db, appCtr, dbCtr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for m.state(app+".service") != "inactive" || m.state(db+".service") != "inactive" {
		if time.Now().After(deadline) {
			t.Fatalf("%s.service is %s and %s.service %s 60s after the last request; want both inactive",
				app, m.state(app+".service"), db, m.state(db+".service"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := strings.TrimSpace(runningContainers(t, e, appCtr) + " " + runningContainers(t, e, dbCtr)); r != "" {
		t.Errorf("running after the idle stop: %s", r)
	}
	if pids := m.lazypodPIDs(t); len(pids) != 0 {
		t.Errorf("lazypod processes left in the machine after the idle stop: %v", pids)
	}
	for _, sock := range []string{app + ".socket", db + ".socket"} {
		if s := m.state(sock); s != "active" {
			t.Errorf("%s is %s after the idle stop; want it still listening", sock, s)
		}
	}
}

// before reports whether Podman's time a comes before b.
func before(t *testing.T, a, b string) bool {
	t.Helper()
	const layout = "2006-01-02 15:04:05.999999999 -0700 MST"
	ta, err := time.Parse(layout, a)
	if err != nil {
		t.Fatalf("parsing Podman's time %q: %v", a, err)
	}
	tb, err := time.Parse(layout, b)
	if err != nil {
		t.Fatalf("parsing Podman's time %q: %v", b, err)
	}
	return ta.Before(tb)
}
