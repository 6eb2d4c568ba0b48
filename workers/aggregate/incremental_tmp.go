package aggregate

// TEMPORARY: stands in for incremental.go until it lands.

import (
	"context"
	"database/sql"
)

type incrColumn struct{ Name, Type string }

type incrPlan struct {
	PartialSQL     string
	MergeSQL       func(src string) string
	FinalSQL       func(src string) string
	PartitionGroup map[string]string
	GroupColumns   []string
}

func incrPlanMart(_ context.Context, _ *sql.Conn, _ string, _ []incrColumn, _ string, _ []string) (*incrPlan, string, error) {
	return nil, "not planned yet", nil
}
