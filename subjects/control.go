package subjects

// Control operations a worker takes on its control subjects.
const (
	CtlPause  = "pause"
	CtlResume = "resume"
	CtlDrain  = "drain" // pause, then reply once nothing is in flight
	CtlPing   = "ping"
)

// ControlStep is the subject every worker of step listens on, besides its
// own [Control] subject, which is one token longer.
func ControlStep(step string) string { return join(Root, string(KindControl), "step", step) }

// ControlRequest is the JSON body of a control request. Dataset, if set,
// limits a step-wide request to the workers of that dataset.
type ControlRequest struct {
	Op      string `json:"op"`
	Dataset string `json:"dataset,omitempty"`
}

// ControlReply is each addressed worker's JSON answer.
type ControlReply struct {
	Worker   string `json:"worker"`
	Step     string `json:"step"`
	Dataset  string `json:"dataset"`
	Op       string `json:"op"`
	State    string `json:"state"`
	InFlight int64  `json:"in_flight"`
	Error    string `json:"error,omitempty"`
}
