package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// ScrapeURL reads a plain-HTTP Prometheus endpoint such as kube-proxy's
// http://127.0.0.1:10249/metrics.
func ScrapeURL(ctx context.Context, url string) (Samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return ParseSamples(resp.Body)
}

// ParseSamples reads a Prometheus text exposition.
func ParseSamples(r io.Reader) (Samples, error) {
	out := Samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// Histogram is the cumulative state of one Prometheus histogram: its
// observation count and sum, and the count at or under each bucket's upper
// bound (le), in seconds for a duration.
type Histogram struct {
	Count, Sum float64
	Buckets    map[float64]float64
}

// Histogram reads metric name's _count, _sum and _bucket series (summed over
// any other labels).
func (s Samples) Histogram(name string) Histogram {
	h := Histogram{Count: s.Sum(name + "_count"), Sum: s.Sum(name + "_sum"), Buckets: map[float64]float64{}}
	for series, v := range s {
		rest, ok := strings.CutPrefix(series, name+"_bucket{")
		if !ok {
			continue
		}
		_, le, ok := strings.Cut(rest, `le="`)
		if !ok {
			continue
		}
		le, _, _ = strings.Cut(le, `"`)
		if b, err := strconv.ParseFloat(le, 64); err == nil {
			h.Buckets[b] += v
		}
	}
	return h
}

// Since is the observations made between earlier and h.
func (h Histogram) Since(earlier Histogram) Histogram {
	d := Histogram{Count: h.Count - earlier.Count, Sum: h.Sum - earlier.Sum, Buckets: map[float64]float64{}}
	for le, v := range h.Buckets {
		d.Buckets[le] = v - earlier.Buckets[le]
	}
	return d
}

// Mean is Sum/Count, 0 without observations.
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / h.Count
}

// Quantile is the upper bound of the bucket holding quantile q (0 < q ≤ 1)
// of the observations: an upper estimate, as coarse as the buckets. It is
// +Inf when that is the overflow bucket, 0 without observations.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return 0
	}
	bounds := make([]float64, 0, len(h.Buckets))
	for le := range h.Buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	for _, le := range bounds {
		if h.Buckets[le] >= q*h.Count {
			return le
		}
	}
	return bounds[len(bounds)-1]
}
