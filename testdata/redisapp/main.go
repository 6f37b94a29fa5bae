// Command redisapp is the lazypod test app with a database: it connects to Redis at start-up, as
// such apps do, and exits if that connection is refused or fails; then it serves HTTP on :8080:
//
//	GET /        → "$VERSION hits N\n": N counts every request ever answered, kept in Redis
//	GET /healthz → 200 "ok" once connected
//
// Environment: REDIS_SOCKET (the unix socket of Redis, default /run/redis/redis.sock), VERSION
// (default v1), EXIT_AT_START (exit with this code at once: a broken build).
package main

import (
	"cmp"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
)

func main() {
	if v := os.Getenv("EXIT_AT_START"); v != "" {
		code, _ := strconv.Atoi(v)
		log.Printf("exiting with code %d at start (EXIT_AT_START)", code)
		os.Exit(code)
	}
	sock := cmp.Or(os.Getenv("REDIS_SOCKET"), "/run/redis/redis.sock")
	version := cmp.Or(os.Getenv("VERSION"), "v1")
	dial := func() (redis.Conn, error) {
		return redis.Dial("unix", sock, redis.DialConnectTimeout(60*time.Second), redis.DialReadTimeout(60*time.Second))
	}
	// One attempt, no retry: a refused or failed connection at start-up
	// ends the app, as it would many apps.
	began := time.Now()
	c, err := dial()
	if err == nil {
		_, err = c.Do("PING")
		c.Close()
	}
	if err != nil {
		log.Fatalf("connecting to Redis at %s at start-up: %v", sock, err)
	}
	log.Printf("connected to Redis at %s in %s", sock, time.Since(began))
	pool := &redis.Pool{Dial: dial, MaxIdle: 4, IdleTimeout: time.Minute}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c := pool.Get()
		defer c.Close()
		n, err := redis.Int64(c.Do("INCR", "hits"))
		if err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%s hits %d\n", version, n)
	})
	log.Printf("listening on :8080, version %s", version)
	log.Fatal(http.ListenAndServe(":8080", nil))
}
