package workers

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/workers/message"
)

func TestJoinRecords(t *testing.T) {
	t.Parallel()
	body := []byte("{\"a\":0}\n{\"a\":1}\r\n{\"a\":2}\n\n{\"a\":3}\n{\"a\":4}")
	var recs [][]byte
	eachLine(body, func(line []byte) { recs = append(recs, line) })
	require.Len(t, recs, 5)

	got := joinRecords(recs[3:])
	require.Equal(t, "{\"a\":3}\n{\"a\":4}", string(got))
	require.Same(t, &body[len(body)-len(got)], &got[0], "records in order in one buffer are not copied")

	require.Equal(t, "{\"a\":0}\n{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}", string(joinRecords(recs)), "a CR and a blank line are not passed on")
	require.Equal(t, "{\"a\":0}\n{\"a\":2}", string(joinRecords([][]byte{recs[0], recs[2]})))
	require.Equal(t, "{\"a\":1}\n{\"a\":0}", string(joinRecords([][]byte{recs[1], recs[0]})))
	require.Equal(t, "x\n", string(joinRecords([][]byte{[]byte("x"), nil})))
	require.Nil(t, joinRecords(nil))
}

func TestJoinOutputs(t *testing.T) {
	t.Parallel()
	body := []byte("{\"a\":0}\n{\"a\":1}\r\n{\"a\":2}")
	var outs []message.Output
	eachLine(body, func(line []byte) { outs = append(outs, message.Output{Data: line}) })
	require.Equal(t, "{\"a\":0}\n{\"a\":1}\n{\"a\":2}", string(joinOutputs(outs)), "a CR is not passed on")
	got := joinOutputs(outs[2:])
	require.Same(t, &body[len(body)-len(got)], &got[0])
	require.Equal(t, "x\n", string(joinOutputs([]message.Output{{Data: []byte("x")}, {}})))
}
