package transform_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/transform"
	"github.com/jetfleet/jetfleet/workers/validate"
)

// TestIoTExample runs examples/iot's sample readings through its rules
// and transforms: a second domain on the same engine.
func TestIoTExample(t *testing.T) {
	t.Parallel()
	spec, err := pipeline.Load("../../examples/iot/pipeline.yaml")
	require.NoError(t, err)
	ds := spec.Dataset("readings")
	tables, err := transform.NewStaticTables(spec)
	require.NoError(t, err)
	vh, err := validate.New(ds)
	require.NoError(t, err)
	th, err := transform.New(ds, tables)
	require.NoError(t, err)
	data, err := os.ReadFile("../../examples/iot/readings.ndjson")
	require.NoError(t, err)

	clean := map[string]string{}
	reasons := map[string]string{}
	for i, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		id := string(rune('1' + i))
		if err := vh.Validate(line); err != nil {
			reasons["r-"+id] = err.Error()
			continue
		}
		out, err := th.Transform(line)
		require.NoError(t, err)
		clean["r-"+id] = string(out)
	}
	require.Equal(t, `{"device_id":"dev-001","heat_alert":false,"humidity":40,"lat":52.52,"lon":13.405,"reading_id":"r-1","site":"berlin-dc1","temp_c":21.5,"temp_f":70.7,"ts":"2026-09-21T14:13:20Z"}`, clean["r-1"])
	require.Equal(t, `{"device_id":"dev-002","heat_alert":false,"humidity":41.5,"lat":52.5201,"lon":13.4049,"reading_id":"r-2","site":"berlin-dc1","temp_c":22.1,"temp_f":71.78,"ts":"2026-09-21T14:14:20Z"}`, clean["r-2"])
	require.Equal(t, `{"device_id":"dev-003","heat_alert":true,"humidity":20,"installer_phone":"REDACTED","lat":38.7223,"lon":-9.1393,"reading_id":"r-3","site":"lisbon-edge","temp_c":47.0,"temp_f":116.6,"ts":"2026-09-21T14:15:00Z"}`, clean["r-3"])
	require.Contains(t, clean["r-4"], `"site":"são-paulo-2"`)
	require.Contains(t, clean["r-5"], `"site":"unassigned"`)
	require.Len(t, clean, 5)
	require.Equal(t, "validation failed: temp_c: 999 is above the maximum 150", reasons["r-6"])
	require.Equal(t, "validation failed: plausible: humidity over 90% above 60°C is a sensor fault", reasons["r-7"])
	require.Equal(t, `validation failed: device_id: "sensor-8" does not match ^dev-[0-9]{3}$`, reasons["r-8"])
}
