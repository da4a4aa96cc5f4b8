// Package linkio is a minimal stand-in for github.com/ian-kent/linkio:
// readers/writers throttled to a given throughput.
package linkio

import (
	"io"
	"time"
)

// Throughput is measured in bits per second.
type Throughput float64

const (
	BitPerSecond  Throughput = 1
	BytePerSecond            = 8 * BitPerSecond
)

type Link struct{ speed Throughput }

func NewLink(speed Throughput) *Link { return &Link{speed: speed} }

func (l *Link) delay(n int) {
	if l.speed > 0 && n > 0 {
		time.Sleep(time.Duration(float64(n) * 8 / float64(l.speed) * float64(time.Second)))
	}
}

type reader struct {
	l *Link
	r io.Reader
}

func (r reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.l.delay(n)
	return n, err
}

type writer struct {
	l *Link
	w io.Writer
}

func (w writer) Write(p []byte) (int, error) {
	w.l.delay(len(p))
	return w.w.Write(p)
}

func (l *Link) NewLinkReader(r io.Reader) io.Reader { return reader{l, r} }
func (l *Link) NewLinkWriter(w io.Writer) io.Writer { return writer{l, w} }
