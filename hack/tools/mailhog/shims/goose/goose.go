// Package goose is a minimal stand-in for github.com/ian-kent/goose: a
// server-sent-events broadcaster.
package goose

import (
	"fmt"
	"net/http"
	"sync"
)

type EventStream struct {
	mu        sync.Mutex
	receivers map[chan []byte]struct{}
}

func NewEventStream() *EventStream {
	return &EventStream{receivers: map[chan []byte]struct{}{}}
}

// Notify sends one event to every connected receiver (dropping it for slow ones).
func (s *EventStream) Notify(event string, data []byte) {
	msg := []byte(fmt.Sprintf("event: %s\ndata: %s\n\n", event, data))
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.receivers {
		select {
		case ch <- msg:
		default:
		}
	}
}

// AddReceiver streams events to w until the client goes away.
func (s *EventStream) AddReceiver(w http.ResponseWriter) {
	ch := make(chan []byte, 16)
	s.mu.Lock()
	s.receivers[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.receivers, ch)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	for msg := range ch {
		if _, err := w.Write(msg); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}
