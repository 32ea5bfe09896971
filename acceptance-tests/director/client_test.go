package director

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests cover only the client's wire handling (302 → task, Range polling, partial lines, 416/204, task
// failure). What a director really does is proven by running the suite against the local director.

type fakeTask struct {
	mu     sync.Mutex
	state  string
	events string
	ranges []string
	codes  []int
}

func newServer(t *testing.T, ft *fakeTask) (*Client, *httptest.Server) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /deployments", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Location", "/tasks/42")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("GET /tasks/42", func(w http.ResponseWriter, r *http.Request) {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		fmt.Fprintf(w, `{"id":42,"state":%q,"description":"create deployment","result":"boom"}`, ft.state)
	})
	mux.HandleFunc("GET /tasks/42/output", func(w http.ResponseWriter, r *http.Request) {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		rg := r.Header.Get("Range")
		ft.ranges = append(ft.ranges, rg)
		if ft.events == "" {
			ft.codes = append(ft.codes, http.StatusNoContent)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		off, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		if off >= len(ft.events) {
			ft.codes = append(ft.codes, http.StatusRequestedRangeNotSatisfiable)
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		ft.codes = append(ft.codes, http.StatusPartialContent)
		w.WriteHeader(http.StatusPartialContent)
		fmt.Fprint(w, ft.events[off:])
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := New(srv.URL, ca, "admin", "pw")
	require.NoError(t, err)
	c.PollInterval = 10 * time.Millisecond
	return c, srv
}

func TestDeployFollows302AndStreamsEventsWithRange(t *testing.T) {
	ft := &fakeTask{state: "processing"}
	c, _ := newServer(t, ft)
	id, err := c.Deploy(context.Background(), []byte("name: x\n"))
	require.NoError(t, err)
	require.Equal(t, 42, id)

	line1 := `{"time":1718000000,"stage":"Updating instance","tags":["etcd"],"total":3,"task":"etcd/a (0) (canary)","index":1,"state":"started","progress":0}`
	line2 := `{"time":1718000001,"stage":"Updating instance","tags":["etcd"],"total":3,"task":"etcd/a (0) (canary)","index":1,"state":"finished","progress":100}`
	go func() {
		time.Sleep(30 * time.Millisecond)
		ft.mu.Lock()
		ft.events = line1 + "\n" + line2[:20] // a partial line
		ft.mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		ft.mu.Lock()
		ft.events += line2[20:] + "\n"
		ft.mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		ft.mu.Lock()
		ft.state = "done"
		ft.mu.Unlock()
	}()
	var out strings.Builder
	task, err := c.WaitTask(context.Background(), id, 5*time.Second, &out)
	require.NoError(t, err)
	require.Equal(t, "done", task.State)
	require.Equal(t, 2, strings.Count(out.String(), "task 42: "), out.String())
	require.Contains(t, out.String(), "Updating instance: etcd/a (0) (canary) (1/3) started")
	require.Contains(t, out.String(), "Updating instance: etcd/a (0) (canary) (1/3) finished")

	ft.mu.Lock()
	defer ft.mu.Unlock()
	require.Equal(t, "bytes=0-", ft.ranges[0])
	require.Contains(t, ft.codes, http.StatusNoContent)
	require.Contains(t, ft.codes, http.StatusRequestedRangeNotSatisfiable)
	require.Contains(t, ft.ranges, "bytes="+strconv.Itoa(len(line1)+1+20)+"-", "the next range starts after the bytes already read")
}

func TestWaitTaskReportsFailedStagesAndTaskError(t *testing.T) {
	ft := &fakeTask{state: "error", events: `{"time":1,"stage":"Updating instance","tags":[],"total":1,"task":"etcd/a (0)","index":1,"state":"failed","progress":100,"data":{"error":"post-start failed"}}` + "\n" +
		`{"time":2,"error":{"code":100,"message":"'etcd/a (0)' is not running after update"}}` + "\n"}
	c, _ := newServer(t, ft)
	_, err := c.WaitTask(context.Background(), 42, 5*time.Second, nil)
	var tf *TaskFailedError
	require.True(t, errors.As(err, &tf), "%v", err)
	require.Equal(t, "error", tf.Task.State)
	require.Equal(t, []string{"Updating instance etcd/a (0): post-start failed", "'etcd/a (0)' is not running after update"}, tf.Errors)
}

func TestBadCredentialsAreAnHTTPError(t *testing.T) {
	c, srv := newServer(t, &fakeTask{})
	bad, err := New(srv.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), "admin", "wrong")
	require.NoError(t, err)
	_, err = bad.Deploy(context.Background(), nil)
	var he *HTTPError
	require.True(t, errors.As(err, &he))
	require.Equal(t, http.StatusUnauthorized, he.Status)
	_ = c
}

func TestTaskIDFromLocation(t *testing.T) {
	for loc, want := range map[string]int{"/tasks/7": 7, "https://10.0.0.6:25555/tasks/12": 12} {
		got, err := TaskIDFromLocation(loc)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	for _, loc := range []string{"", "/tasks/", "/deployments/7", "/tasks/x"} {
		_, err := TaskIDFromLocation(loc)
		require.Error(t, err, loc)
	}
}
