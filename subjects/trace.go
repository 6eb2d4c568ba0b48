package subjects

// TraceID returns the trace id of a W3C traceparent header (the
// HeaderTraceParent that travels end to end), "" if malformed.
func TraceID(traceparent string) string {
	if len(traceparent) == 55 && traceparent[2] == '-' && traceparent[35] == '-' {
		return traceparent[3:35]
	}
	return ""
}
