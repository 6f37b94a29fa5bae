package launcher

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveTCP accepts connections on a loopback listener and hands each to
// handle.
func serveTCP(t *testing.T, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c.(*net.TCPConn))
		}
	}()
	return ln.Addr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProbeTCP(t *testing.T) {
	tests := []struct {
		name      string
		addr      func(t *testing.T) string
		wantReady bool
	}{
		{
			name: "listening and holding",
			addr: func(t *testing.T) string {
				var held []net.Conn
				t.Cleanup(func() {
					for _, c := range held {
						c.Close()
					}
				})
				return serveTCP(t, func(c *net.TCPConn) { held = append(held, c) })
			},
			wantReady: true,
		},
		{
			name: "banner then close",
			addr: func(t *testing.T) string {
				return serveTCP(t, func(c *net.TCPConn) { c.Write([]byte("220 hi\r\n")); c.Close() })
			},
			wantReady: true,
		},
		{
			name: "port forwarder with nothing behind: accept then close",
			addr: func(t *testing.T) string {
				return serveTCP(t, func(c *net.TCPConn) { c.Close() })
			},
			wantReady: false,
		},
		{
			name: "port forwarder with nothing behind: accept then reset",
			addr: func(t *testing.T) string {
				return serveTCP(t, func(c *net.TCPConn) { c.SetLinger(0); c.Close() })
			},
			wantReady: false,
		},
		{name: "nothing listening", addr: closedPort, wantReady: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			err := probeTCP(ctx, (&net.Dialer{}).DialContext, tt.addr(t), tcpSettle)
			if got := err == nil; got != tt.wantReady {
				t.Errorf("probeTCP: got ready %v (%v); want %v", got, err, tt.wantReady)
			}
		})
	}
}

func TestProbeHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok"))
		case "/moved":
			http.Redirect(w, r, "/elsewhere-that-fails", http.StatusFound)
		case "/elsewhere-that-fails", "/broken":
			http.Error(w, "broken", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	client := newProbeClient((&net.Dialer{}).DialContext)
	tests := []struct {
		name      string
		addr      string
		path      string
		wantReady bool
	}{
		{name: "200", addr: addr, path: "/ok", wantReady: true},
		{name: "302 not followed", addr: addr, path: "/moved", wantReady: true},
		{name: "404", addr: addr, path: "/missing", wantReady: false},
		{name: "500", addr: addr, path: "/broken", wantReady: false},
		{name: "nothing listening", addr: closedPort(t), path: "/ok", wantReady: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			err := probeHTTP(ctx, client, tt.addr, tt.path)
			if got := err == nil; got != tt.wantReady {
				t.Errorf("probeHTTP: got ready %v (%v); want %v", got, err, tt.wantReady)
			}
		})
	}
}

func TestNotifySocket(t *testing.T) {
	tests := []struct {
		name      string
		messages  []string
		wantReady bool
	}{
		{name: "ready", messages: []string{"READY=1"}, wantReady: true},
		{name: "ready among others", messages: []string{"STATUS=loading", "MAINPID=1\nREADY=1\n"}, wantReady: true},
		{name: "status only", messages: []string{"STATUS=loading"}, wantReady: false},
		{name: "silence", wantReady: false},
		{name: "not quite", messages: []string{"READY=10", "XREADY=1"}, wantReady: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "n.sock")
			n, err := listenNotify(path)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			c, err := net.Dial("unixgram", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, m := range tt.messages {
				if _, err := c.Write([]byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			err = n.wait(ctx)
			if got := err == nil; got != tt.wantReady {
				t.Errorf("wait: got ready %v (%v); want %v", got, err, tt.wantReady)
			}
		})
	}
}

func TestListenNotifyReplacesStaleSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rt")
	path := filepath.Join(dir, "svc.notify")
	for i := range 2 {
		n, err := listenNotify(path)
		if err != nil {
			t.Fatalf("listenNotify #%d: %v", i+1, err)
		}
		n.Close()
	}
}
