package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

// startCPUProfile, for developers measuring skiff's start: with
// SKIFF_CPU_PROFILE=FILE in the environment, the process writes a CPU
// profile of its first SKIFF_CPU_PROFILE_SECONDS (default 5) seconds to
// FILE (go tool pprof FILE).
func startCPUProfile() {
	path := os.Getenv("SKIFF_CPU_PROFILE")
	if path == "" {
		return
	}
	d := 5 * time.Second
	if s := os.Getenv("SKIFF_CPU_PROFILE_SECONDS"); s != "" {
		v, err := time.ParseDuration(s + "s")
		if err != nil {
			fmt.Fprintf(os.Stderr, "SKIFF_CPU_PROFILE_SECONDS=%q: %v\n", s, err)
			os.Exit(2)
		}
		d = v
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "SKIFF_CPU_PROFILE: %v\n", err)
		os.Exit(2)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "SKIFF_CPU_PROFILE: %v\n", err)
		os.Exit(2)
	}
	time.AfterFunc(d, func() {
		pprof.StopCPUProfile()
		f.Close()
	})
}
