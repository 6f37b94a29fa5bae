// Command testserver is a tiny static server used as the container image in
// lazypod's integration tests and demos. Its behaviour is set by environment
// variables so one image covers every readiness and failure case.
//
// It serves:
//
//	HTTP :8080  GET / → "$VERSION\n" (default "v1"); GET /healthz → 200 "ok";
//	            POST /echo → the request body; GET /bytes?n=N → N bytes
//	TCP  :9000  echo until the client half-closes, then CloseWrite
//	UDP  :9000  echo each datagram
//
// Environment:
//
//	LISTEN_DELAY=DURATION  wait this long before listening
//	EXIT_AT_START=N        print "exiting at start with N" to stderr, exit N
//	NEVER_LISTEN=1         never listen; sleep forever
//	CRASH_AFTER=DURATION   exit 3 this long after listening
//	NOTIFY=1               send "READY=1" to $NOTIFY_SOCKET once listening
//	UNHEALTHY=1            GET /healthz → 500 "unhealthy", so -check fails;
//	                       everything else serves as usual
//	UDP_DELAY=DURATION     bind the UDP port this long after the TCP ports,
//	                       as a server whose UDP side starts last
//
// "testserver -version V" answers V on GET / whatever $VERSION says.
// "testserver -http ADDR" serves HTTP on ADDR instead of :8080, as an image
// that listens on another port (the quick start's whoami, on :80).
// "testserver -check" exits 0 if and only if GET
// http://127.0.0.1:8080/healthz answers 200; the image's HEALTHCHECK and the
// exec probe tests use it.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	check := flag.Bool("check", false, "exit 0 iff http://127.0.0.1:8080/healthz answers 200")
	versionFlag := flag.String("version", "", "the version GET / answers; overrides $VERSION")
	hang := flag.Bool("hang", false, "print nothing and never exit (an exec probe that hangs)")
	httpAddr := flag.String("http", ":8080", "the address HTTP is served on")
	flag.Parse()
	if *hang {
		for {
			time.Sleep(time.Hour) // select{} would trip the deadlock detector
		}
	}
	if *check {
		os.Exit(runCheck())
	}
	if err := run(*httpAddr, *versionFlag); err != nil {
		fmt.Fprintf(os.Stderr, "testserver: %v\n", err)
		os.Exit(1)
	}
}

func runCheck() int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://127.0.0.1:8080/healthz")
	if err != nil {
		fmt.Fprintf(os.Stderr, "check: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "check: status %d\n", resp.StatusCode)
		return 1
	}
	return 0
}

func run(httpAddr, version string) error {
	// Exit promptly on SIGTERM: PID 1 in a container has no default handlers.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go exitOnSignal(sig)

	if v := os.Getenv("EXIT_AT_START"); v != "" {
		code, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("parsing EXIT_AT_START %q: %w", v, err)
		}
		fmt.Fprintf(os.Stderr, "exiting at start with %d\n", code)
		os.Exit(code)
	}
	if os.Getenv("NEVER_LISTEN") == "1" {
		fmt.Fprintln(os.Stderr, "never listening")
		select {}
	}
	if v := os.Getenv("LISTEN_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("parsing LISTEN_DELAY %q: %w", v, err)
		}
		fmt.Fprintf(os.Stderr, "waiting %s before listening\n", d)
		time.Sleep(d)
	}

	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("listening on http: %w", err)
	}
	tl, err := net.Listen("tcp", ":9000")
	if err != nil {
		return fmt.Errorf("listening on tcp: %w", err)
	}
	if v := os.Getenv("UDP_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("parsing UDP_DELAY %q: %w", v, err)
		}
		fmt.Fprintf(os.Stderr, "listening on tcp; waiting %s before binding udp\n", d)
		time.Sleep(d)
	}
	ul, err := net.ListenPacket("udp", ":9000")
	if err != nil {
		return fmt.Errorf("listening on udp: %w", err)
	}
	if version == "" {
		version = os.Getenv("VERSION")
	}
	if version == "" {
		version = "v1"
	}
	fmt.Fprintf(os.Stderr, "listening: http %s, tcp :9000, udp :9000, version %s\n", httpAddr, version)

	if os.Getenv("NOTIFY") == "1" {
		if err := notifyReady(os.Getenv("NOTIFY_SOCKET")); err != nil {
			return err
		}
	}
	if v := os.Getenv("CRASH_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("parsing CRASH_AFTER %q: %w", v, err)
		}
		time.AfterFunc(d, func() {
			fmt.Fprintf(os.Stderr, "crashing after %s\n", d)
			os.Exit(3)
		})
	}

	go serveTCP(tl)
	go serveUDP(ul)
	return http.Serve(hl, newMux(version))
}

func exitOnSignal(sig <-chan os.Signal) {
	s := <-sig
	fmt.Fprintf(os.Stderr, "exiting on %s\n", s)
	os.Exit(0)
}

func notifyReady(path string) error {
	if path == "" {
		return fmt.Errorf("notifying readiness: NOTIFY_SOCKET is unset")
	}
	c, err := net.Dial("unixgram", path)
	if err != nil {
		return fmt.Errorf("notifying readiness: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("READY=1")); err != nil {
		return fmt.Errorf("notifying readiness: %w", err)
	}
	fmt.Fprintln(os.Stderr, "sent READY=1")
	return nil
}

func newMux(version string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n", version)
	})
	unhealthy := os.Getenv("UNHEALTHY") == "1"
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if unhealthy {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "n must be a non-negative integer", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.CopyN(w, zeros{}, n)
	})
	return mux
}

// zeros is an endless reader of 'x' bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func serveTCP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "accepting tcp: %v\n", err)
			return
		}
		go echoTCP(c.(*net.TCPConn))
	}
}

// echoTCP copies everything back until the client half-closes, then
// half-closes its own side so the client sees EOF after the last byte.
func echoTCP(c *net.TCPConn) {
	defer c.Close()
	io.Copy(c, c)
	c.CloseWrite()
}

func serveUDP(pc net.PacketConn) {
	buf := make([]byte, 64*1024)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			fmt.Fprintf(os.Stderr, "reading udp: %v\n", err)
			return
		}
		pc.WriteTo(buf[:n], addr)
	}
}
