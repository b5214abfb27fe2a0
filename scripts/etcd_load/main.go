// etcd_load: the closed-loop put load that scripts/compare_etcd.sh drives against etcd, the
// same shape as `vsr benchmark`: N workers, each with one put in flight (put, wait for the
// answer, put again), for a warm-up and then a measured window, per client count. All workers
// share one clientv3 client (one gRPC connection), as etcd's own benchmark tool does by default.
// Prints one JSON object per client count on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type level struct {
	Clients int     `json:"clients"`
	Ops     int     `json:"ops"`
	Errors  int64   `json:"errors"`
	Seconds float64 `json:"seconds"`
	OpsPerS float64 `json:"ops_per_s"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	P999Ms  float64 `json:"p999_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// quantile of sorted latencies, nearest rank.
func quantile(sorted []time.Duration, q float64) float64 {
	rank := int(q*float64(len(sorted))+0.5) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return float64(sorted[rank].Nanoseconds()) / 1e6
}

func run(client *clientv3.Client, clients int, warmup, window time.Duration, value string) level {
	var recording, done int32
	var errors int64
	perWorker := make([][]time.Duration, clients)
	var group sync.WaitGroup
	for worker := 0; worker < clients; worker++ {
		group.Add(1)
		go func(worker int) {
			defer group.Done()
			for n := 0; atomic.LoadInt32(&done) == 0; n++ {
				key := "load/" + strconv.Itoa(worker) + "/" + strconv.Itoa(n%1024)
				start := time.Now()
				_, err := client.Put(context.Background(), key, value)
				elapsed := time.Since(start)
				if atomic.LoadInt32(&recording) == 0 || atomic.LoadInt32(&done) == 1 {
					continue
				}
				if err != nil {
					atomic.AddInt64(&errors, 1)
					continue
				}
				perWorker[worker] = append(perWorker[worker], elapsed)
			}
		}(worker)
	}
	time.Sleep(warmup)
	atomic.StoreInt32(&recording, 1)
	started := time.Now()
	time.Sleep(window)
	atomic.StoreInt32(&done, 1)
	seconds := time.Since(started).Seconds()
	group.Wait()
	var all []time.Duration
	for _, latencies := range perWorker {
		all = append(all, latencies...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	result := level{Clients: clients, Ops: len(all), Errors: errors, Seconds: seconds}
	if len(all) > 0 {
		result.OpsPerS = float64(len(all)) / seconds
		result.P50Ms = quantile(all, 0.50)
		result.P99Ms = quantile(all, 0.99)
		result.P999Ms = quantile(all, 0.999)
		result.MaxMs = float64(all[len(all)-1].Nanoseconds()) / 1e6
	}
	return result
}

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs")
	clientCounts := flag.String("clients", "1,16,64", "comma-separated client counts")
	seconds := flag.Float64("duration-s", 10, "measured seconds per client count")
	warmupS := flag.Float64("warmup-s", 2, "unmeasured seconds before each window")
	valueBytes := flag.Int("value-bytes", 64, "bytes per value")
	flag.Parse()
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*endpoints, ","),
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd_load:", err)
		os.Exit(1)
	}
	defer client.Close()
	value := strings.Repeat("v", *valueBytes)
	warmup := time.Duration(*warmupS * float64(time.Second))
	window := time.Duration(*seconds * float64(time.Second))
	encoder := json.NewEncoder(os.Stdout)
	for _, field := range strings.Split(*clientCounts, ",") {
		clients, err := strconv.Atoi(field)
		if err != nil || clients < 1 {
			fmt.Fprintln(os.Stderr, "etcd_load: bad client count", field)
			os.Exit(2)
		}
		result := run(client, clients, warmup, window, value)
		if result.Ops == 0 {
			fmt.Fprintln(os.Stderr, "etcd_load: no put succeeded with", clients, "clients")
			os.Exit(1)
		}
		encoder.Encode(result)
	}
}
