package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/metrics"
	"github.com/lazypod/lazypod/internal/podman"
	"github.com/lazypod/lazypod/updater"
)

// The update tests run the classic auto-update story end to end: a real
// docker-registry on loopback, images pushed to it by the private Podman,
// lazypod serve with --auto-update, and lazypod update, status and
// rollback as a person would run them.

// startRegistry starts Debian's docker-registry on 127.0.0.1 with its
// storage in a temp dir and returns its host:port once it answers; it is
// killed when the test ends.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if os.Getenv("LAZYPOD_TEST_REQUIRE") == "1" {
			t.Fatal("docker-registry not found but LAZYPOD_TEST_REQUIRE=1: install the Debian package docker-registry")
		}
		t.Skip("docker-registry not found: install the Debian package docker-registry")
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := range 3 { // the free port may be taken meanwhile
		addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
		conf := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
		yml := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
			filepath.Join(dir, "storage"), addr)
		if err := os.WriteFile(conf, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		var logs lockedBuffer
		cmd := exec.Command(bin, "serve", conf)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting docker-registry: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("docker-registry pid %d did not exit within 10s of SIGKILL", cmd.Process.Pid)
			}
		}
		client := &http.Client{Timeout: time.Second}
		deadline := time.Now().Add(15 * time.Second)
		for lastErr = errors.New("not answering"); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			resp, err := client.Get("http://" + addr + "/v2/")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					lastErr = nil
					break
				}
				err = fmt.Errorf("GET /v2/: %s", resp.Status)
			}
			lastErr = err
			select {
			case <-exited:
				lastErr = fmt.Errorf("exited: %s", logs.String())
			default:
				continue
			}
			break
		}
		if lastErr == nil {
			t.Cleanup(stop)
			return addr
		}
		stop()
	}
	t.Fatalf("starting docker-registry: %v", lastErr)
	return ""
}

// testImages builds this test's own copies of the test server's versions
// (scripts/build-images.sh builds localhost/lazypod-testserver:v1..v6), each
// with a label key unique to the test, so that a prune filtered by that
// label touches nothing another test uses (a key: Podman 4.3's prune
// ignores the value of a label=KEY=VALUE filter). It returns the copies'
// names by version and the label filter, and removes the copies when the
// test ends.
func (e e2eEnv) testImages(t *testing.T, name string, versions ...string) (map[string]string, string) {
	t.Helper()
	dir := t.TempDir()
	label := "io.lazypod.e2e." + name
	refs := make(map[string]string)
	for _, v := range versions {
		ref := "localhost/" + name + "-img:" + v
		cf := filepath.Join(dir, "Containerfile."+v)
		body := fmt.Sprintf("FROM localhost/lazypod-testserver:%s\nLABEL %s=1\n", v, label)
		if err := os.WriteFile(cf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		e.podman(t, "build", "--format", "docker", "-q", "-t", ref, "-f", cf, dir)
		refs[v] = ref
	}
	t.Cleanup(func() {
		out, _ := exec.Command("podman", "--remote", "--url", e.podmanURL, "images", "-q", "--filter", "label="+label).Output()
		for _, id := range strings.Fields(string(out)) {
			exec.Command("podman", "--remote", "--url", e.podmanURL, "rmi", "-f", id).Run()
		}
	})
	return refs, "label=" + label
}

// lazypod runs the built binary with args and returns its stdout, stderr
// and exit code.
func (e e2eEnv) lazypod(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var o, s bytes.Buffer
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &s
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running lazypod %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), s.String(), code
}

// statusOf is lazypod status --format json for one service.
func (e e2eEnv) statusOf(t *testing.T, stateDir, name string) updater.Status {
	t.Helper()
	out, errOut, code := e.lazypod(t, "status", "--format", "json", "--state-dir", stateDir, name)
	if code != 0 {
		t.Fatalf("lazypod status: exit %d: %s", code, errOut)
	}
	var rows []updater.Status
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("lazypod status: %v; output %s", err, out)
	}
	return rows[0]
}

// waitStatus polls lazypod status until ok accepts it, for up to 10s (the
// serve records a start a moment after it answers the clients), and
// returns the last status read.
func (e e2eEnv) waitStatus(t *testing.T, stateDir, name string, ok func(updater.Status) bool) updater.Status {
	t.Helper()
	var st updater.Status
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st = e.statusOf(t, stateDir, name); ok(st) {
			break
		}
	}
	return st
}

// updateOnce runs lazypod update for one service and returns its UPDATED.
func (e e2eEnv) updateOnce(t *testing.T, stateDir, name string, extra ...string) string {
	t.Helper()
	args := append([]string{"update", "--format", "json", "--state-dir", stateDir, "--podman-url", e.podmanURL}, extra...)
	out, errOut, code := e.lazypod(t, append(args, name)...)
	var rows []updater.Report
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("lazypod update: exit %d, %v; output %s %s", code, err, out, errOut)
	}
	if code != 0 {
		t.Fatalf("lazypod update: exit %d: %s; row %+v", code, errOut, rows[0])
	}
	return rows[0].Updated
}

// imageID returns the ID of image ref in the private Podman.
func (e e2eEnv) imageID(t *testing.T, ref string) string {
	return e.podman(t, "image", "inspect", "--format", "{{.Id}}", ref)
}

// waitStopped waits until container name no longer runs.
func (e e2eEnv) waitStopped(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for e.containerRunning(t, name) {
		if time.Now().After(deadline) {
			t.Fatal("container still running 60s after the last request")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getAll fetches url with n concurrent clients and returns the bodies,
// failing the test for any client without an answer.
func getAll(t *testing.T, url string, n int) []string {
	t.Helper()
	bodies := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { bodies[i], errs[i] = httpGet(t, url) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("clients without an answer: %v", err)
	}
	return bodies
}

// wantAll fails the test unless every body is want.
func wantAll(t *testing.T, what string, bodies []string, want string) {
	t.Helper()
	for i, b := range bodies {
		if b != want+"\n" {
			t.Fatalf("%s: client %d of %d got %q; want %q (all: %q)", what, i+1, len(bodies), b, want, bodies)
		}
	}
}

// TestUpdateRegistry is the classic story under the registry policy: a
// service on :latest; a good image pushed and swapped in at the next
// activation; then one that exits at start, one that never gets ready and
// one that crashes right after it got ready, each rolled back within one
// activation with every waiting client answered by the good version; a
// failed digest is never pulled again; a fix after a failure is deployed;
// the previous image survives an image prune; and lazypod status tells the
// story.
func TestUpdateRegistry(t *testing.T) {
	e := needE2E(t)
	reg := startRegistry(t)
	name := uniqueName(t)
	// Two groups: the prune below removes the unused images of the first.
	imgs, pruneFilter := e.testImages(t, name+"-a", "v1", "v2", "v3", "v4")
	later, _ := e.testImages(t, name+"-b", "v5", "v6")
	for v, ref := range later {
		imgs[v] = ref
	}
	ids := make(map[string]string)
	for v, ref := range imgs {
		ids[v] = e.imageID(t, ref)
	}
	ref := reg + "/lazypod-e2e/" + name + ":latest"
	push := func(v string) {
		t.Helper()
		e.podman(t, "push", "--tls-verify=false", imgs[v], ref)
	}
	stateDir := t.TempDir()
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	url := "http://" + web + "/"
	t.Cleanup(func() {
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rm", "-f", "-t", "0", podman.PinName(name)).Run()
	})

	push("v1")
	cmd := exec.Command(e.bin, "serve", "--image", ref, "--name", name,
		"--auto-update", "registry", "--tls-verify=false", "--update-interval", "0",
		"--listen", "web="+web, "--port", "web=8080",
		"--podman-url", e.podmanURL, "--state-dir", stateDir,
		"--idle-timeout", "1s", "--ready-timeout", "4s", "--stop-timeout", "1s", "--rollback-window", "5s")
	e.startProcess(t, name, cmd)

	wantAll(t, "first activation", getAll(t, url, 5), "v1")
	st := e.waitStatus(t, stateDir, name, func(st updater.Status) bool { return st.ImageID != "" })
	if st.ImageID != ids["v1"] || !strings.HasPrefix(st.Digest, "sha256:") || st.Policy != "registry" {
		t.Fatalf("status after the first start: %+v; want image v1 with its digest, policy registry", st)
	}
	if st.LastColdStart == "" {
		t.Errorf("status after the first start: no last_cold_start: %+v", st)
	}

	// A new good image: found, pulled, pending; a dry run changes nothing.
	push("v2")
	before, err := os.ReadFile(filepath.Join(stateDir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.updateOnce(t, stateDir, name, "--dry-run"); got != "pending" {
		t.Fatalf("update --dry-run with v2 pushed: %s; want pending", got)
	}
	if after, _ := os.ReadFile(filepath.Join(stateDir, name+".json")); !bytes.Equal(before, after) {
		t.Fatalf("update --dry-run changed the state:\n%s\n->\n%s", before, after)
	}
	e.waitStopped(t, name) // an update lands only between activations
	if got := e.updateOnce(t, stateDir, name, "--tls-verify=false"); got != "pending" {
		t.Fatalf("update with v2 pushed: %s; want pending", got)
	}
	if st := e.statusOf(t, stateDir, name); st.PendingImageID != ids["v2"] {
		t.Fatalf("status after the update: pending %q; want v2's ID", st.PendingImageID)
	}
	wantAll(t, "activation after v2 was pulled", getAll(t, url, 5), "v2")
	st = e.waitStatus(t, stateDir, name, func(st updater.Status) bool { return st.ImageID == ids["v2"] })
	if st.ImageID != ids["v2"] || st.PreviousImageID != ids["v1"] ||
		st.PendingImageID != "" || st.LastUpdateResult != "true" {
		t.Fatalf("status after the swap to v2: %+v; want current v2, previous v1, nothing pending, result true", st)
	}

	// Broken images: each is rolled back within the activation that tries
	// it, and every waiting client is answered by v2.
	for _, bad := range []struct{ v, what string }{
		{"v3", "exits at start"},
		{"v4", "never ready"},
	} {
		push(bad.v)
		e.waitStopped(t, name)
		if got := e.updateOnce(t, stateDir, name); got != "pending" {
			t.Fatalf("update with %s (%s) pushed: %s; want pending", bad.v, bad.what, got)
		}
		wantAll(t, "activation trying "+bad.v+" ("+bad.what+")", getAll(t, url, 20), "v2")
		st = e.statusOf(t, stateDir, name)
		if st.ImageID != ids["v2"] || st.LastUpdateResult != "rolled back" || st.PendingImageID != "" {
			t.Fatalf("status after %s (%s): %+v; want current v2, result rolled back, nothing pending", bad.v, bad.what, st)
		}
		failed := st.FailedDigests[len(st.FailedDigests)-1]
		// The failed digest is not pulled or deployed again: with the
		// image removed from local storage, a check must not bring it
		// back (v3 stays, for the prune below).
		e.waitStopped(t, name)
		if bad.v == "v4" {
			e.podman(t, "rmi", "-f", ids["v4"])
		}
		if got := e.updateOnce(t, stateDir, name); got != "failed" {
			t.Fatalf("update with the failed %s still in the registry: %s; want failed", bad.v, got)
		}
		if bad.v == "v4" {
			if err := exec.Command("podman", "--remote", "--url", e.podmanURL, "image", "exists", ids["v4"]).Run(); err == nil {
				t.Fatal("update pulled the failed v4 again")
			}
		}
		if st := e.statusOf(t, stateDir, name); st.PendingImageID != "" || !slices.Contains(st.FailedDigests, failed) {
			t.Fatalf("status after re-checking the failed %s: %+v", bad.v, st)
		}
		wantAll(t, "activation after "+bad.v+" failed", getAll(t, url, 3), "v2")
	}

	// The previous image is pinned: a prune of every unused image of this
	// test keeps it, while it does remove the failed ones nobody uses.
	e.waitStopped(t, name)
	if st.PreviousImageID != ids["v1"] {
		t.Fatalf("status before the prune: previous %s; want v1", st.PreviousImageID)
	}
	e.podman(t, "image", "prune", "-af", "--filter", pruneFilter)
	exists := func(id string) bool {
		return exec.Command("podman", "--remote", "--url", e.podmanURL, "image", "exists", id).Run() == nil
	}
	if !exists(ids["v1"]) || !exists(ids["v2"]) {
		t.Fatalf("after image prune -af: previous v1 kept %v, current v2 kept %v; want both kept", exists(ids["v1"]), exists(ids["v2"]))
	}
	if exists(ids["v3"]) {
		t.Fatalf("after image prune -af: the failed, unused v3 is still there: the prune did not run")
	}
	wantAll(t, "activation after the prune", getAll(t, url, 3), "v2")

	// A fix after the failures is deployed.
	push("v6")
	if got := e.updateOnce(t, stateDir, name); got != "pending" {
		t.Fatalf("update with the fix v6 pushed: %s; want pending", got)
	}
	e.waitStopped(t, name) // the prune's activation: a serving container is never swapped
	wantAll(t, "activation with the fix v6", getAll(t, url, 5), "v6")

	// An image that gets ready and then crashes within the rollback window
	// is rolled back: the next activation runs v6 again.
	push("v5")
	e.waitStopped(t, name)
	if got := e.updateOnce(t, stateDir, name); got != "pending" {
		t.Fatalf("update with v5 pushed: %s; want pending", got)
	}
	// A client holding a connection keeps the idle stop away until v5
	// has crashed.
	hold, err := net.Dial("tcp", web)
	if err != nil {
		t.Fatal(err)
	}
	if body, err := httpGet(t, url); err != nil || body != "v5\n" {
		t.Fatalf("activation with v5: %q, %v; want v5 (it crashes 1s after it is ready)", body, err)
	}
	e.waitStopped(t, name)
	hold.Close()
	// lazypod records the failure a moment after Podman reports the exit.
	st = e.waitStatus(t, stateDir, name, func(st updater.Status) bool { return st.LastUpdateResult == "rolled back" })
	if st.ImageID != ids["v6"] || st.LastUpdateResult != "rolled back" {
		t.Fatalf("status after v5 crashed within the window: %+v; want current v6, rolled back", st)
	}
	wantAll(t, "activation after v5 crashed", getAll(t, url, 5), "v6")
	if got := e.updateOnce(t, stateDir, name); got != "failed" {
		t.Fatalf("update with the crashing v5 still in the registry: %s; want failed", got)
	}
	if n := len(e.statusOf(t, stateDir, name).FailedDigests); n != 3 {
		t.Errorf("failed digests: %d; want 3 (v3, v4, v5)", n)
	}
	out, _, _ := e.lazypod(t, "update", "--state-dir", stateDir, "--podman-url", e.podmanURL, name)
	t.Logf("lazypod update at the end:\n%s", out)
	out, _, _ = e.lazypod(t, "status", "--state-dir", stateDir, name)
	t.Logf("lazypod status at the end:\n%s", out)
}

// TestUpdateLocal covers the local policy, a manual rollback, and a
// corrupt state file: someone builds a new image under the service's tag;
// lazypod update --dry-run sees it without changing anything; the next
// start runs it; a broken build is rolled back by ID; lazypod rollback goes
// back by hand; a torn state file is reported and set aside.
func TestUpdateLocal(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	imgs, _ := e.testImages(t, name, "v1", "v2", "v3")
	ref := "localhost/" + name + "-svc:latest"
	tag := func(v string) { t.Helper(); e.podman(t, "tag", imgs[v], ref) }
	stateDir := t.TempDir()
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	url := "http://" + web + "/"
	t.Cleanup(func() {
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rm", "-f", "-t", "0", podman.PinName(name)).Run()
		exec.Command("podman", "--remote", "--url", e.podmanURL, "untag", ref, ref).Run()
	})

	tag("v1")
	metricsFile := filepath.Join(t.TempDir(), "web.prom")
	cmd := exec.Command(e.bin, "serve", "--image", ref, "--name", name, "--auto-update", "local",
		"--listen", "web="+web, "--port", "web=8080", "--podman-url", e.podmanURL, "--state-dir", stateDir,
		"--idle-timeout", "1s", "--ready-timeout", "4s", "--stop-timeout", "1s", "--metrics-file", metricsFile)
	e.startProcess(t, name, cmd)
	wantAll(t, "first activation", getAll(t, url, 3), "v1")

	tag("v2")
	e.waitStopped(t, name)
	if got := e.updateOnce(t, stateDir, name, "--dry-run"); got != "pending" {
		t.Fatalf("update --dry-run after podman tag v2: %s; want pending", got)
	}
	if st := e.statusOf(t, stateDir, name); st.PendingImageID != "" {
		t.Fatalf("update --dry-run recorded pending %s", st.PendingImageID)
	}
	wantAll(t, "activation after podman tag v2", getAll(t, url, 3), "v2")

	tag("v3") // exits at start
	e.waitStopped(t, name)
	wantAll(t, "activation after podman tag v3", getAll(t, url, 10), "v2")
	st := e.waitStatus(t, stateDir, name, func(st updater.Status) bool { return st.LastUpdateResult == "rolled back" })
	if len(st.FailedDigests) != 1 || st.ImageID != e.imageID(t, imgs["v2"]) || st.LastUpdateResult != "rolled back" {
		t.Fatalf("status after v3 failed: %+v; want v3 failed, v2 current, rolled back", st)
	}
	e.waitStopped(t, name)
	if got := e.updateOnce(t, stateDir, name); got != "failed" {
		t.Fatalf("update with the failed v3 tagged: %s; want failed", got)
	}

	// By hand: back from v2 to v1.
	out, errOut, code := e.lazypod(t, "rollback", "--state-dir", stateDir, "--podman-url", e.podmanURL, name)
	if code != 0 {
		t.Fatalf("lazypod rollback: exit %d: %s", code, errOut)
	}
	t.Logf("lazypod rollback: %s", out)
	wantAll(t, "activation after lazypod rollback", getAll(t, url, 3), "v1")
	if _, errOut, code := e.lazypod(t, "rollback", "--state-dir", stateDir, "--podman-url", e.podmanURL, name); code != 1 || !strings.Contains(errOut, "no previous image") {
		t.Fatalf("second lazypod rollback: exit %d, %q; want 1 and no previous image", code, errOut)
	}
	// One metrics file for the serve and the commands: v3 rolled back by
	// the serve, the failed update by lazypod update (its dry run not
	// counted), the rollback by hand.
	get, _ := metricsOf(t, metricsFile, name)
	wantMetrics(t, " after the rollbacks", get, []metricWant{
		{metrics.Rollbacks, nil, 2},
		{metrics.Updates, []string{"result", "rolled_back"}, 1},
		{metrics.Updates, []string{"result", "failed"}, 1},
		{metrics.Updates, []string{"result", "pending"}, 0},
		{metrics.Activations, nil, 1},
		{metrics.Serving, nil, 1},
	})

	// A torn state file is reported and set aside, never read as empty.
	e.waitStopped(t, name)
	path := filepath.Join(stateDir, name+".json")
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = e.lazypod(t, "status", "--state-dir", stateDir, name)
	if code != 1 || !strings.Contains(errOut, "corrupt") {
		t.Fatalf("status with a torn state file: exit %d, %q; want 1 and corrupt", code, errOut)
	}
	// status only reads: the file stays where it is, for the serve to set
	// aside under the lock; the next start runs what the container last
	// ran (v1, rolled back to by hand above) and records the loss.
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("lazypod status set the torn state file aside: %v", m)
	}
	wantAll(t, "activation with a torn state file", getAll(t, url, 3), "v1")
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 1 {
		t.Fatalf("torn state file not set aside by the serve: %v", m)
	}
	if st := e.statusOf(t, stateDir, name); !strings.Contains(st.LastCheckError, "corrupt") || st.ImageID != e.imageID(t, imgs["v1"]) {
		t.Fatalf("status after the serve set the torn file aside: %+v; want v1 and the loss in last_check_error", st)
	}
}

// TestUpdateTimeout: a registry that answers the digest check and then
// never serves the manifest hangs the pull, and lazypod update gives up
// at --timeout instead of hanging the timer's job forever (review risk 3).
func TestUpdateTimeout(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hung := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("e", 64))
			w.Header().Set("Content-Length", "100")
		default: // the pull: never answered until the test ends
			select {
			case <-r.Context().Done():
			case <-hung:
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { close(hung); srv.Close() })

	stateDir := t.TempDir()
	st := updater.State{Name: name, Image: ln.Addr().String() + "/lazypod-e2e/hang:latest", Policy: "registry",
		ImageID: e.imageID(t, e.image), TLSVerify: new(bool)}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(stateDir, name+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	out, errOut, code := e.lazypod(t, "update", "--state-dir", stateDir, "--podman-url", e.podmanURL, "--timeout", "3s", name)
	took := time.Since(began)
	figure(t, "update with a hanging pull", fmt.Sprintf("gave up after %s with --timeout 3s", took.Round(time.Millisecond)),
		"registry answers the digest, never the manifest")
	if code != 1 || !strings.Contains(errOut, "check timed out after 3s") || !strings.Contains(out, "failed") {
		t.Fatalf("lazypod update: exit %d, stdout %q, stderr %q; want 1, failed, and the timeout named", code, out, errOut)
	}
	if took > 30*time.Second {
		t.Errorf("lazypod update took %s with --timeout 3s", took)
	}
	if got := e.statusOf(t, stateDir, name).LastCheckError; !strings.Contains(got, "timed out") {
		t.Errorf("last_check_error = %q; want the timeout recorded", got)
	}
}

// TestUpdateRegistriesConf runs lazypod update against a plain-HTTP
// registry on loopback with no --tls-verify anywhere: as podman pull,
// it reads the registries.conf CONTAINERS_REGISTRIES_CONF names. Marked
// insecure there, the check finds the update; not marked, it fails as
// an HTTPS client must; marked blocked, it is refused.
func TestUpdateRegistriesConf(t *testing.T) {
	e := needE2E(t)
	reg := startRegistry(t)
	name := uniqueName(t)
	imgs, _ := e.testImages(t, name, "v1", "v2")
	ref := reg + "/lazypod-e2e/" + name + ":latest"
	e.podman(t, "push", "--tls-verify=false", imgs["v1"], ref)
	e.podman(t, "tag", imgs["v1"], ref) // the first start needs no pull
	t.Cleanup(func() {
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rm", "-f", "-t", "0", podman.PinName(name)).Run()
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rmi", "-f", ref).Run()
	})
	dir := t.TempDir()
	conf := func(file, setting string) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, fmt.Appendf(nil, "[[registry]]\nlocation = %q\n%s\n", reg, setting), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	insecure, plain, blocked := conf("insecure.conf", "insecure = true"), conf("plain.conf", ""), conf("blocked.conf", "blocked = true")

	stateDir := t.TempDir()
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	cmd := exec.Command(e.bin, "serve", "--image", ref, "--name", name, "--auto-update", "registry", "--update-interval", "0",
		"--listen", "web="+web, "--port", "web=8080", "--podman-url", e.podmanURL, "--state-dir", stateDir, "--idle-timeout", "1s")
	cmd.Env = append(os.Environ(), "CONTAINERS_REGISTRIES_CONF="+insecure)
	e.startProcess(t, name, cmd)
	wantAll(t, "first activation", getAll(t, "http://"+web+"/", 2), "v1")
	e.waitStatus(t, stateDir, name, func(st updater.Status) bool { return st.ImageID != "" })
	e.podman(t, "push", "--tls-verify=false", imgs["v2"], ref)

	for _, tt := range []struct{ name, conf, want string }{
		{"insecure", insecure, `"pending"`},
		{"not marked", plain, "server gave HTTP response to HTTPS client"},
		{"blocked", blocked, "is blocked in " + blocked},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := exec.Command(e.bin, "update", "--dry-run", "--format", "json", "--state-dir", stateDir, "--podman-url", e.podmanURL, name)
			c.Env = append(os.Environ(), "CONTAINERS_REGISTRIES_CONF="+tt.conf)
			c.Stdout, c.Stderr = &out, &out
			err := c.Run()
			if !strings.Contains(out.String(), tt.want) || (err == nil) != (tt.name == "insecure") {
				t.Errorf("lazypod update --dry-run: %v\n%s\nwant it to say %s", err, out.String(), tt.want)
			}
		})
	}
}
