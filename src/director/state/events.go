package state

import (
	"fmt"
	"path/filepath"
	"sort"
	"time"
)

// Event is one entry of the director's event log (`bosh events`): who did what to which object, in which task,
// deployment and instance. An event that ends a begun one names it as its parent (the director's
// api/event_manager.rb records the same fields).
type Event struct {
	ID         int            `json:"id"`
	ParentID   int            `json:"parent_id,omitempty"`
	Timestamp  time.Time      `json:"timestamp"`
	User       string         `json:"user"`
	Action     string         `json:"action"`
	ObjectType string         `json:"object_type"`
	ObjectName string         `json:"object_name"`
	Task       int            `json:"task,omitempty"`
	Deployment string         `json:"deployment,omitempty"`
	Instance   string         `json:"instance,omitempty"`
	Context    map[string]any `json:"context,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// AddEvent records an event with the next id and the current time (unless set) and returns it.
func (s *Store) AddEvent(e Event) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Join(s.dir, "events")
	if s.lastEvent == 0 {
		all, err := list[Event](dir)
		if err != nil {
			return Event{}, err
		}
		for _, x := range all {
			s.lastEvent = max(s.lastEvent, x.ID)
		}
	}
	s.lastEvent++
	e.ID = s.lastEvent
	if e.Timestamp.IsZero() {
		e.Timestamp = time.Now().UTC()
	}
	return e, writeJSON(filepath.Join(dir, fmt.Sprintf("%09d.json", e.ID)), e)
}

// Events lists every event, newest first.
func (s *Store) Events() ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := list[Event](filepath.Join(s.dir, "events"))
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, err
}
