package main

import (
	"strings"
	"testing"
	"time"
)

// Reports as wrk 4.1.0 and h2load 1.52.0 (Debian 12) print them.
const (
	wrkReport = `Running 1s test @ http://127.0.0.1:20724/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.06ms    4.91ms  43.64ms   73.77%
    Req/Sec     2.78k   439.19     3.25k    85.00%
  Latency Distribution
     50%  810.00us
     75%   13.57ms
     90%   16.44ms
     99%    1.20s
  5561 requests in 1.00s, 822.93KB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   5549.40
Transfer/sec:    821.21KB
`
	h2loadReport = `starting benchmark...
Application protocol: h2

finished in 1.01s, 6912.00 req/s, 326.62KB/s
requests: 6912 total, 7072 started, 6912 done, 6910 succeeded, 2 failed, 0 errored, 1 timeout
status codes: 6969 2xx, 0 3xx, 0 4xx, 1 5xx
                     min         max         mean         sd        +/- sd
time for request:      379us     68.42ms     22.26ms      9.48ms    70.91%
`
)

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	want := result{rps: 5549.40, p50: 810 * time.Microsecond, p99: 1200 * time.Millisecond, requests: 5561, errors: 9}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("parseWrk accepted a report without figures")
	}
}

func TestParseH2load(t *testing.T) {
	r, err := parseH2load(h2loadReport)
	if err != nil {
		t.Fatal(err)
	}
	want := result{rps: 6912, requests: 6912, errors: 3}
	if r != want {
		t.Errorf("parseH2load = %+v, want %+v", r, want)
	}
}

func TestReadH2loadLog(t *testing.T) {
	log := "1764900000000000\t200\t1500\n1764900000000100\t-1\t9000\n1764900000000200\t200\t500\n"
	d, err := readH2loadLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 2 || d[0] != 1500*time.Microsecond || d[1] != 500*time.Microsecond {
		t.Errorf("readH2loadLog = %v, want the two 200s: [1.5ms 500µs]", d)
	}
}
