package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// userHZ is the kernel's clock tick of /proc's CPU times (USER_HZ, 100 on
// every Linux architecture Go runs on).
const userHZ = 100

// cpuSample is the whole machine's busy CPU time and that of the bench's
// own processes, at one instant. Two of them say how much of the CPU
// other processes took meanwhile: on a shared machine, what a cell
// measured with less than the whole machine.
type cpuSample struct {
	at         time.Time
	busy, ours float64 // seconds
}

func sampleCPU(pids []int) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return s, fmt.Errorf("/proc/stat: %q", line)
	}
	// user nice system idle iowait irq softirq steal: idle and iowait are
	// not busy; interrupts are left out too, since on loopback they are
	// mostly the bench's own packets, charged to no process.
	for i, name := range f[1:9] {
		if i >= 3 && i <= 6 {
			continue
		}
		v, err := strconv.ParseFloat(name, 64)
		if err != nil {
			return s, err
		}
		s.busy += v / userHZ
	}
	for _, pid := range append(pids, os.Getpid()) {
		s.ours += processCPU(pid)
	}
	return s, nil
}

// processCPU is a process's user and system time with its waited-for
// children's, in seconds; 0 when it is gone.
func processCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'; utime, stime, cutime, cstime are fields 14 to 17.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var total float64
	for _, v := range f[11:15] {
		n, _ := strconv.ParseFloat(v, 64)
		total += n / userHZ
	}
	return total
}

// foreign is the share of the machine's CPU (0 to 1) that processes other
// than the bench's took between before and after.
func foreign(before, after cpuSample) float64 {
	wall := after.at.Sub(before.at).Seconds() * float64(runtime.NumCPU())
	if wall <= 0 {
		return 0
	}
	return max(0, ((after.busy-before.busy)-(after.ours-before.ours))/wall)
}

// pids are the bench's server processes: every system's and its Redis.
func (b *bench) pids() []int {
	var ps []int
	for _, s := range b.systems {
		ps = append(ps, s.proc.pid())
		if s.redis != nil {
			ps = append(ps, s.redis.proc.pid())
		}
	}
	return ps
}
