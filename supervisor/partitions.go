package supervisor

// mergePartitions folds the partition consumers of one step and dataset
// (aggregate_<dataset>_p0, _p1, ...) into one row: a step's replicas
// divide its partitions, and the operator watches the step. Lag and
// in-flight counts add up; the delivered sequence is the highest, the
// ack floor the lowest. steps are sorted by consumer name.
func mergePartitions(steps []StepStatus) []StepStatus {
	out := steps[:0:0]
	at := map[[2]string]int{}
	for _, s := range steps {
		if s.Partitions == 0 {
			out = append(out, s)
			continue
		}
		k := [2]string{s.Step, s.Dataset}
		i, ok := at[k]
		if !ok {
			s.Consumer = s.Step + "_" + s.Dataset + "_p*"
			at[k] = len(out)
			out = append(out, s)
			continue
		}
		m := &out[i]
		m.Partitions++
		m.consumers = append(m.consumers, s.consumers...)
		m.Pending += s.Pending
		m.AckPending += s.AckPending
		m.Redelivered += s.Redelivered
		m.DeliveredSeq = max(m.DeliveredSeq, s.DeliveredSeq)
		m.AckFloorSeq = min(m.AckFloorSeq, s.AckFloorSeq)
	}
	return out
}
