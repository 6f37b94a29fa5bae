// Command lazypod-demo is the small web server that `make demo` runs in a container behind
// lazypod. Its page shows which container answered, when that container started and how many
// requests it has served, so a person can watch a cold start, a warm request, an idle stop and
// the next cold start.
//
// Browsers get HTML; other clients (curl) get the same facts as plain text.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lazypod demo</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em; color: #222; }
h1 { font-weight: 600; }
dt { color: #666; margin-top: .8em; }
dd { margin: .2em 0 0; font-size: 1.3em; font-family: ui-monospace, monospace; }
p { color: #666; }
</style>
</head>
<body>
<h1>Hello from a lazypod container</h1>
<dl>
<dt>container</dt><dd>{{.Hostname}}</dd>
<dt>started</dt><dd>{{.Started}}</dd>
<dt>up for</dt><dd>{{.Uptime}}</dd>
<dt>requests served</dt><dd>{{.Requests}}</dd>
</dl>
<p>This container was started by the first connection to lazypod's socket and is stopped when
it has been idle. Reload to count; wait for the idle timeout and reload to see a new container.</p>
</body>
</html>
`))

// status is what the page shows.
type status struct {
	Hostname string
	Started  string
	Uptime   time.Duration
	Requests int64
}

// server answers every request with the container's status.
type server struct {
	hostname string
	started  time.Time
	requests atomic.Int64
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	st := status{
		Hostname: s.hostname,
		Started:  s.started.UTC().Format(time.RFC3339),
		Uptime:   time.Since(s.started).Round(time.Second),
		Requests: s.requests.Add(1),
	}
	w.Header().Set("Cache-Control", "no-store")
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello from a lazypod container\ncontainer: %s\nstarted:   %s\nup for:    %s\nrequests:  %d\n",
			st.Hostname, st.Started, st.Uptime, st.Requests)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, st); err != nil {
		log.Printf("writing page: %v", err)
	}
}

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	flag.Parse()

	hostname, err := os.Hostname()
	if err != nil {
		hostname = "unknown"
	}
	srv := &http.Server{
		Addr:              *addr,
		Handler:           &server{hostname: hostname, started: time.Now()},
		ReadHeaderTimeout: 10 * time.Second,
	}

	// As PID 1 of its container, the server gets no default action for SIGTERM: without this
	// handler `podman stop` would wait its whole timeout and then kill it.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	done := make(chan struct{})
	go shutdownOnSignal(ctx, srv, done)

	log.Printf("serving on %s", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serving: %v", err)
	}
	<-done
}

// shutdownOnSignal stops srv gracefully once ctx ends, then closes done.
func shutdownOnSignal(ctx context.Context, srv *http.Server, done chan<- struct{}) {
	defer close(done)
	<-ctx.Done()
	log.Print("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Printf("shutting down: %v", err)
	}
}
