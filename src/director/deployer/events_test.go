package deployer

import "testing"

func TestInstanceAction(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       override
		desired string
		hadPrev bool
		want    string
	}{
		{"new instance", override{}, "started", false, "create"},
		{"changed instance", override{}, "started", true, "update"},
		{"bosh recreate", override{state: "started", recreate: true}, "started", true, "recreate"},
		{"bosh restart", override{state: "started", restart: true}, "started", true, "restart"},
		{"bosh stop", override{state: "stopped"}, "stopped", true, "stop"},
		{"bosh stop --hard", override{state: "detached"}, "detached", true, "stop"},
		{"deploy of a stopped instance", override{}, "stopped", true, "stop"},
		{"bosh start", override{state: "started"}, "started", true, "start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := instanceAction(tc.o, tc.desired, tc.hadPrev); got != tc.want {
				t.Fatalf("instanceAction = %q, want %q", got, tc.want)
			}
		})
	}
}
