package main

import (
	"fmt"
	"testing"
)

// Over 2n rounds, order puts each of three contenders first twice and
// right after each other one twice.
func TestOrderBalanced(t *testing.T) {
	xs := []string{"d", "p", "l"}
	first := map[string]int{}
	after := map[string]int{}
	for r := range 2 * len(xs) {
		o := order(xs, r)
		if len(o) != len(xs) {
			t.Fatalf("round %d: got %v; want a permutation of %v", r, o, xs)
		}
		first[o[0]]++
		for i := 1; i < len(o); i++ {
			after[o[i-1]+">"+o[i]]++
		}
	}
	for _, x := range xs {
		if first[x] != 2 {
			t.Errorf("%s first in %d of 6 rounds; want 2 (%v)", x, first[x], first)
		}
		for _, y := range xs {
			if x != y && after[x+">"+y] != 2 {
				t.Errorf("%s right after %s in %d of 6 rounds; want 2 (%v)", y, x, after[x+">"+y], after)
			}
		}
	}
}

func TestParseWrkRequests(t *testing.T) {
	out := `Running 3s test @ http://127.0.0.1:1/
  2 threads and 16 connections
  Latency Distribution
     50%  1.66ms
     75%  2.00ms
     90%  2.50ms
     99%    3.76ms
  25000 requests in 3.00s, 2.10MB read
Requests/sec:   8333.10
`
	r, err := parseWrk(out)
	if err != nil || r.Requests != 25000 || fmt.Sprint(r.RPS) != "8333.1" || r.P50 != 1660 || r.P99 != 3760 {
		t.Errorf("parseWrk: got %+v, %v; want 25000 requests at 8333.1/s, p50 1660µs, p99 3760µs", r, err)
	}
}
