package aggregate

// Incremental maintenance of marts whose SQL is a decomposable aggregation.
//
// A mart such as
//
//	SELECT customer_id, count(*) AS orders, sum(amount_usd) AS revenue_usd
//	FROM orders GROUP BY customer_id
//
// need not be recomputed from every record on every flush: each of its
// aggregates can be split into partial aggregates computed over new records
// only, merged with the stored partials of earlier records, and finished
// into the mart's rows. [incrPlanMart] decides whether a mart's SQL has
// that shape and, when it has, writes the three statements that do it:
//
//	PartialSQL           new records (bound to the dataset's name) -> partial rows
//	MergeSQL(src)        partial rows (stored + new, any number)    -> one partial row per group
//	FinalSQL(src)        merged partial rows                        -> the mart's rows
//
// The analysis reads DuckDB's own parse tree (json_serialize_sql) as
// generic JSON and rewrites it there; DuckDB writes SQL text back from the
// rewritten trees (json_deserialize_sql). Types come from DESCRIBE of the
// original SQL over an empty table of the dataset's schema, so FinalSQL
// returns the same column names and types as the mart's own SQL.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
)

// incrColumn is a column name and its DuckDB type (a dataset's schema
// column, or a column of a partial table).
type incrColumn = marts.Column

// incrPlan is how to keep one mart incrementally. Its statements use only
// columns named _jf_gK (group values) and _jf_aK (partial aggregates), so
// the mart's own column names never collide with them.
type incrPlan struct {
	// Groups are the mart's group expressions, in the partial table as
	// columns _jf_g0.._jf_gN. Empty for a mart without GROUP BY (one row).
	Groups []incrGroup
	// Aggs are the partial aggregates, in the partial table as columns
	// _jf_a0.._jf_aM. An aggregate used twice, and the sum and count
	// behind avg, are computed once.
	Aggs []incrAgg
	// PartialSQL computes partial rows from the records of a table or
	// view named after the dataset (the new records only): the group
	// values, then the partial aggregates, one row per group. The mart's
	// WHERE is applied here, to each record once.
	PartialSQL string
	// PartitionGroup maps each partition column of the mart to the group
	// column holding its value.
	PartitionGroup map[string]string
	// Columns are the partial table's columns in order (Groups, then
	// Aggs) with the types PartialSQL and MergeSQL produce. The types
	// survive a Parquet round trip exactly: HUGEINT, which DuckDB writes
	// to Parquet as DOUBLE, is held as DECIMAL(38,0).
	Columns []incrColumn

	// Outputs are the mart's columns as its SQL returns them.
	Outputs []incrColumn

	finals []incrFinal // aggregate calls of the mart, each computed from Aggs
	items  []string    // the mart's SELECT items over _jf_gK and _jf_cK columns
	having string      // the mart's HAVING over the same columns, "" if none
}

// incrGroup is one group expression of a mart.
type incrGroup struct {
	Column string // _jf_gK
	SQL    string // the expression over the dataset's columns
	Type   string // its type in the partial table
	source string // its type as the mart's SQL computes it
}

// incrAgg is one partial aggregate.
type incrAgg struct {
	Column string // _jf_aK
	SQL    string // the aggregate call over the dataset's columns, e.g. count_star() FILTER (WHERE ...)
	// Merge is the aggregate that combines partial values: sum for
	// count_star, count, count_if and sum; min, max, bool_and, bool_or
	// for themselves.
	Merge string
	Type  string // its type in the partial table
	count bool   // count_star or count: merged over no rows it is 0, not NULL (count_if is NULL, like sum)
}

// incrFinal is one aggregate call of the mart, as computed from merged
// partial aggregates, in FinalSQL's inner projection as _jf_cK.
type incrFinal struct {
	sql  string // over _jf_aK columns
	typ  string // the call's type in the mart's SQL
	kind string // canonical function name
	args []int  // the Aggs it reads
}

// MergeSQL merges partial rows from src into one row per group (one row
// in all for a mart without GROUP BY, even when src is empty). src is a
// table name, a table function call, or a query (parenthesised here when
// it is bare); its rows have the shape of Columns, such as the rows of
// PartialSQL, of earlier merges, or a union of both. A NULL group value
// is a group, as in SQL GROUP BY. The result has the shape of Columns.
func (p *incrPlan) MergeSQL(src string) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, g := range p.Groups {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(duckdb.Ident(g.Column))
	}
	for i, a := range p.Aggs {
		if i > 0 || len(p.Groups) > 0 {
			b.WriteString(", ")
		}
		m := a.Merge + "(" + duckdb.Ident(a.Column) + ")"
		if a.count {
			m = "coalesce(" + m + ", 0)" // a count over no rows is 0, not NULL
		}
		fmt.Fprintf(&b, "CAST(%s AS %s) AS %s", m, a.Type, duckdb.Ident(a.Column))
	}
	b.WriteString(" FROM ")
	b.WriteString(incrFromItem(src))
	if len(p.Groups) > 0 {
		b.WriteString(" GROUP BY ALL")
	}
	return b.String()
}

// FinalSQL computes the mart's rows from merged partial rows in src (as
// for MergeSQL; one row per group). The columns are the mart's, with its
// names and types and in its order; HAVING is applied; ORDER BY is not.
// For a mart without GROUP BY, src is merged again first, so an empty src
// gives the one row the mart's SQL returns over no records.
func (p *incrPlan) FinalSQL(src string) string {
	from := incrFromItem(src)
	if len(p.Groups) == 0 {
		from = "(" + p.MergeSQL(src) + ")"
	}
	var inner []string
	for _, g := range p.Groups {
		inner = append(inner, fmt.Sprintf("CAST(%s AS %s) AS %s", duckdb.Ident(g.Column), g.source, duckdb.Ident(g.Column)))
	}
	for k, f := range p.finals {
		inner = append(inner, fmt.Sprintf("CAST(%s AS %s) AS %s", f.sql, f.typ, duckdb.Ident(incrCallColumn(k))))
	}
	if len(inner) == 0 {
		inner = append(inner, "1 AS _jf_one")
	}
	outer := make([]string, len(p.items))
	for i, it := range p.items {
		outer[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", it, p.Outputs[i].Type, duckdb.Ident(p.Outputs[i].Name))
	}
	q := "SELECT " + strings.Join(outer, ", ") + " FROM (SELECT " + strings.Join(inner, ", ") + " FROM " + from + ") AS _jf_m"
	if p.having != "" {
		q += " WHERE " + p.having
	}
	return q
}

// incrFromItem makes src usable after FROM: a bare query gets parentheses.
func incrFromItem(src string) string {
	s := strings.TrimSpace(src)
	end := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) })
	if end < 0 {
		end = len(s)
	}
	switch strings.ToUpper(s[:end]) {
	case "SELECT", "WITH", "FROM", "VALUES", "TABLE", "PIVOT", "UNPIVOT":
		return "(" + s + ")"
	}
	return s
}

func incrGroupColumn(k int) string { return "_jf_g" + strconv.Itoa(k) }
func incrAggColumn(k int) string   { return "_jf_a" + strconv.Itoa(k) }
func incrCallColumn(k int) string  { return "_jf_c" + strconv.Itoa(k) }

// incrDecomposable maps the aggregates that split into partials (by every
// name DuckDB knows them by) to their canonical name.
var incrDecomposable = map[string]string{
	"count_star": "count_star", "count": "count", "count_if": "count_if", "countif": "count_if",
	"sum": "sum", "min": "min", "max": "max", "avg": "avg", "mean": "avg",
	"bool_and": "bool_and", "bool_or": "bool_or",
}

// incrMerge is the aggregate merging partials of each canonical partial.
var incrMerge = map[string]string{
	"count_star": "sum", "count": "sum", "count_if": "sum", "sum": "sum",
	"min": "min", "max": "max", "bool_and": "bool_and", "bool_or": "bool_or",
}

// incrPlanMart plans the incremental maintenance of the mart martSQL over
// dataset (whose columns are schema), partitioned by partitionBy. It
// returns a plan, or a reason (a short phrase for a log line) why the mart
// is not incremental and must be recomputed, or an error when the SQL
// cannot be analysed (it does not parse or bind).
//
// A mart is incremental when its SQL is one SELECT over the dataset (a
// table alias and the schema main allowed) with no CTE, join, subquery,
// window function, QUALIFY, DISTINCT, LIMIT, OFFSET, SAMPLE or grouping
// sets; an optional WHERE; GROUP BY expressions (by expression, select
// alias or position), GROUP BY ALL, or no GROUP BY at all; an optional
// HAVING; any ORDER BY (ignored); and SELECT items that are group
// expressions or expressions over group expressions and decomposable
// aggregates: count(*), count, count_if, sum and avg over numbers, min,
// max, bool_and, bool_or, each with an optional FILTER but no DISTINCT or
// ORDER BY. Every partition column must be a group expression.
//
// SQL refused for its statement shape (not one SELECT over the dataset,
// CTE, join, subquery, window function, DISTINCT, LIMIT, ...) is not bound
// and may also be invalid; anything else is bound first, so invalid SQL is
// an error. conn is used for parsing, the function catalog and DESCRIBE
// only; it needs no table of the dataset.
func incrPlanMart(ctx context.Context, conn *sql.Conn, dataset string, schema []incrColumn, martSQL string, partitionBy []string) (*incrPlan, string, error) {
	if len(schema) == 0 {
		return nil, "", fmt.Errorf("incremental plan: dataset %s has no schema", dataset)
	}
	ast, tmpl, err := incrParse(ctx, conn, martSQL)
	if err != nil {
		return nil, "", err
	}
	a := &incrAnalysis{conn: conn, dataset: dataset, schema: schema, tmpl: tmpl}
	reason, err := a.analyse(ctx, ast)
	if err != nil || reason != "" {
		return nil, reason, err
	}
	return a.plan(ctx, partitionBy)
}

// incrAnalysis is one planning run.
type incrAnalysis struct {
	conn    *sql.Conn
	dataset string
	schema  []incrColumn
	tmpl    map[string]any // the parse tree of "SELECT 1", a template for fragments

	stmt    map[string]any // the mart's statement, FROM without schema (for DESCRIBE)
	outputs []incrColumn   // the mart's columns
	cols    map[string]bool
	binding string            // the name qualifying columns (alias or dataset), lower case
	funcs   map[string]incrFn // functions of the SQL, by lower-case name
	items   []any             // SELECT items, qualifiers and aliases resolved
	where   any               // nil if none
	having  any               // nil if none
	groups  []any             // group expressions
	groupAt map[string]int    // canonical group expression -> index
	calls   []map[string]any  // aggregate calls (canonical function names)
	callAt  map[string]int    // canonical call -> index
	parts   []map[string]any  // partial aggregates
	partAt  map[string]int    // canonical partial -> index
	finals  [][]int           // per call: the partials it reads
	outs    []any             // SELECT items over _jf_gK and _jf_cK
	outHave any               // HAVING over _jf_gK and _jf_cK
}

// incrFn is what the catalog says a function is.
type incrFn int

const (
	incrScalar    incrFn = iota // a scalar function or operator, or a macro over them
	incrAggregate               // an aggregate function
	incrAggMacro                // a macro whose body holds an aggregate or window function
)

// incrParse parses sql with DuckDB; it also returns the parse tree of
// "SELECT 1" (the statement shape of this DuckDB version).
func incrParse(ctx context.Context, conn *sql.Conn, query string) (map[string]any, map[string]any, error) {
	var js, tjs string
	err := conn.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql(CAST(? AS VARCHAR)) AS VARCHAR), CAST(json_serialize_sql('SELECT 1') AS VARCHAR)", query).Scan(&js, &tjs)
	if err != nil {
		return nil, nil, fmt.Errorf("parse mart sql: %w", err)
	}
	ast, err := incrDecode(js)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := incrDecode(tjs)
	if err != nil {
		return nil, nil, err
	}
	return ast, tmpl, nil
}

// incrDecode decodes a json_serialize_sql result, keeping numbers exact.
func incrDecode(js string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("parse mart sql: decode parse tree: %w", err)
	}
	if e, _ := v["error"].(bool); e {
		return nil, fmt.Errorf("parse mart sql: %v: %v", v["error_type"], v["error_message"])
	}
	return v, nil
}

// analyse checks the statement's shape and rewrites it; a reason refuses it.
func (a *incrAnalysis) analyse(ctx context.Context, ast map[string]any) (string, error) {
	stmts, _ := ast["statements"].([]any)
	if len(stmts) != 1 {
		return "", fmt.Errorf("parse mart sql: %d statements, want one SELECT", len(stmts))
	}
	stmt, _ := stmts[0].(map[string]any)
	node, _ := stmt["node"].(map[string]any)
	if node == nil {
		return "", errors.New("parse mart sql: no statement")
	}
	if reason := a.checkNode(node); reason != "" {
		return reason, nil
	}
	from := node["from_table"].(map[string]any)
	a.binding = strings.ToLower(incrStr(from["alias"]))
	if a.binding == "" {
		a.binding = strings.ToLower(incrStr(from["table_name"]))
	}
	a.cols = map[string]bool{}
	for _, c := range a.schema {
		a.cols[strings.ToLower(c.Name)] = true
	}

	// The statement as written, FROM without its schema: DESCRIBE binds
	// it to an empty CTE named after the dataset.
	a.stmt = incrClone(stmt).(map[string]any)
	dnode := a.stmt["node"].(map[string]any)
	dfrom := dnode["from_table"].(map[string]any)
	dfrom["schema_name"], dfrom["catalog_name"] = "", ""
	if incrStr(from["alias"]) == "" {
		for _, k := range []string{"select_list", "where_clause", "group_expressions", "having", "modifiers"} {
			dnode[k] = a.unqualifySchema(dnode[k])
		}
	}

	// Bind the mart's SQL: a mart that does not is an error, not a reason.
	text, err := incrDeparse(ctx, a.conn, []map[string]any{a.stmt})
	if err != nil {
		return "", err
	}
	a.outputs, err = describe(ctx, a.conn, incrDatasetCTE(a.dataset, a.schema)+text[0])
	if err != nil {
		return "", fmt.Errorf("describe mart sql: %w", err)
	}

	list, _ := node["select_list"].([]any)
	if len(a.outputs) != len(list) {
		return "", fmt.Errorf("describe mart sql: %d columns for %d SELECT items", len(a.outputs), len(list))
	}
	var names []string
	for _, part := range []any{list, node["where_clause"], node["group_expressions"], node["having"]} {
		incrFunctionNames(part, &names)
	}
	funcs, err := incrFunctions(ctx, a.conn, names)
	if err != nil {
		return "", err
	}
	a.funcs = funcs

	// Unqualified columns, and select aliases inlined where the SQL uses
	// them (DuckDB allows aliases in later SELECT items, WHERE, GROUP BY
	// and HAVING; a column of the dataset wins over an alias).
	aliases := map[string]any{}
	for _, it := range list {
		m := it.(map[string]any)
		e := a.inline(a.unqualify(m), aliases)
		a.items = append(a.items, e)
		if al := strings.ToLower(incrStr(m["alias"])); al != "" {
			if _, dup := aliases[al]; !dup {
				aliases[al] = e
			}
		}
	}
	if w := node["where_clause"]; w != nil {
		a.where = a.inline(a.unqualify(w), aliases)
	}
	if h := node["having"]; h != nil {
		a.having = a.inline(a.unqualify(h), aliases)
	}

	if reason, err := a.findGroups(node, aliases); err != nil || reason != "" {
		return reason, err
	}
	if len(a.groups) == 0 && !slices.ContainsFunc(a.items, a.hasAggregate) && (a.having == nil || !a.hasAggregate(a.having)) {
		return "not an aggregation (no GROUP BY and no aggregate)", nil
	}

	// The SELECT items and HAVING over group values and aggregate calls.
	a.callAt, a.partAt = map[string]int{}, map[string]int{}
	for _, it := range a.items {
		out, reason := a.finish(it)
		if reason != "" {
			return reason, nil
		}
		a.outs = append(a.outs, out)
	}
	if a.having != nil {
		out, reason := a.finish(a.having)
		if reason != "" {
			return reason, nil
		}
		a.outHave = out
	}
	return "", nil
}

// checkNode refuses statement shapes that are not one SELECT over the dataset.
func (a *incrAnalysis) checkNode(node map[string]any) string {
	switch t := incrStr(node["type"]); t {
	case "SELECT_NODE":
	case "SET_OPERATION_NODE":
		return "set operation " + incrStr(node["setop_type"])
	default:
		return "not a plain SELECT (" + t + ")"
	}
	if cte, _ := node["cte_map"].(map[string]any); cte != nil {
		if m, _ := cte["map"].([]any); len(m) > 0 {
			return "WITH (common table expression)"
		}
	}
	from, _ := node["from_table"].(map[string]any)
	switch t := incrStr(from["type"]); t {
	case "BASE_TABLE":
	case "JOIN":
		return "join"
	case "SUBQUERY":
		return "subquery in FROM"
	case "TABLE_FUNCTION":
		return "table function in FROM"
	case "EMPTY":
		return "no FROM"
	case "EXPRESSION_LIST":
		return "VALUES in FROM"
	default:
		return t + " in FROM"
	}
	if !strings.EqualFold(incrStr(from["table_name"]), a.dataset) {
		return fmt.Sprintf("FROM reads %s, not the dataset %s", incrStr(from["table_name"]), a.dataset)
	}
	if s := incrStr(from["schema_name"]); s != "" && !strings.EqualFold(s, "main") {
		return "FROM names schema " + s
	}
	if c := incrStr(from["catalog_name"]); c != "" {
		return "FROM names catalog " + c
	}
	if from["at_clause"] != nil {
		return "AT clause in FROM"
	}
	if ca, _ := from["column_name_alias"].([]any); len(ca) > 0 {
		return "column aliases on the FROM table"
	}
	if from["sample"] != nil || node["sample"] != nil {
		return "SAMPLE"
	}
	if node["qualify"] != nil {
		return "QUALIFY"
	}
	mods, _ := node["modifiers"].([]any)
	for _, m := range mods {
		mm, _ := m.(map[string]any)
		switch incrStr(mm["type"]) {
		case "ORDER_MODIFIER":
		case "DISTINCT_MODIFIER":
			if on, _ := mm["distinct_on_targets"].([]any); len(on) > 0 {
				return "DISTINCT ON"
			}
			return "SELECT DISTINCT"
		case "LIMIT_MODIFIER":
			if !incrIsNull(mm["limit"]) || !incrIsNull(mm["offset"]) {
				return "LIMIT or OFFSET"
			}
		case "LIMIT_PERCENT_MODIFIER":
			return "LIMIT or OFFSET"
		default:
			return "modifier " + incrStr(mm["type"])
		}
	}
	if sets, _ := node["group_sets"].([]any); len(sets) > 1 {
		return "GROUPING SETS, ROLLUP or CUBE"
	}
	for _, c := range []struct {
		clause string
		v      any
	}{{"SELECT", node["select_list"]}, {"WHERE", node["where_clause"]}, {"GROUP BY", node["group_expressions"]}, {"HAVING", node["having"]}} {
		if reason := incrCheckExprs(c.v, c.clause); reason != "" {
			return reason
		}
	}
	return ""
}

// incrCheckExprs refuses expression kinds no rewrite can carry.
func incrCheckExprs(v any, clause string) string {
	reason := ""
	incrWalk(v, func(m map[string]any) bool {
		switch incrStr(m["class"]) {
		case "WINDOW":
			reason = "window function " + incrStr(m["function_name"])
		case "SUBQUERY":
			reason = "subquery in " + clause
		case "STAR":
			reason = "* or COLUMNS(...) in " + clause
		case "PARAMETER":
			reason = "parameter in " + clause
		case "POSITIONAL_REFERENCE":
			reason = "positional reference in " + clause
		case "FUNCTION":
			if n := incrStr(m["function_name"]); n == "grouping" || n == "grouping_id" {
				reason = n + "()"
			}
		}
		return reason == ""
	})
	return reason
}

// findGroups sets the group expressions: GROUP BY's (positions and select
// aliases resolved), or for GROUP BY ALL the SELECT items that hold a
// column and no aggregate (as DuckDB groups them).
func (a *incrAnalysis) findGroups(node map[string]any, aliases map[string]any) (string, error) {
	a.groupAt = map[string]int{}
	add := func(e any) string {
		if incrHasClass(e, "COLLATE") {
			return "COLLATE in a group expression"
		}
		k := incrCanon(e)
		if _, ok := a.groupAt[k]; !ok {
			a.groupAt[k] = len(a.groups)
			a.groups = append(a.groups, e)
		}
		return ""
	}
	exprs, _ := node["group_expressions"].([]any)
	if len(exprs) == 0 {
		if incrStr(node["aggregate_handling"]) != "FORCE_AGGREGATES" {
			return "", nil
		}
		for _, it := range a.items {
			if !a.hasAggregate(it) && incrHasClass(it, "COLUMN_REF") {
				if reason := add(it); reason != "" {
					return reason, nil
				}
			}
		}
		return "", nil
	}
	for _, g := range exprs {
		if pos, ok := incrPosition(g); ok {
			if pos < 1 || pos > len(a.items) {
				return "", fmt.Errorf("mart sql: GROUP BY %d: the SELECT list has %d items", pos, len(a.items))
			}
			if reason := add(a.items[pos-1]); reason != "" {
				return reason, nil
			}
			continue
		}
		if reason := add(a.inline(a.unqualify(g), aliases)); reason != "" {
			return reason, nil
		}
	}
	return "", nil
}

// incrPosition reads an integer literal of GROUP BY (a SELECT position).
func incrPosition(v any) (int, bool) {
	m, _ := v.(map[string]any)
	if incrStr(m["class"]) != "CONSTANT" {
		return 0, false
	}
	val, _ := m["value"].(map[string]any)
	typ, _ := val["type"].(map[string]any)
	switch incrStr(typ["id"]) {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT":
	default:
		return 0, false
	}
	if null, _ := val["is_null"].(bool); null {
		return 0, false
	}
	n, ok := val["value"].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n.String())
	return i, err == nil
}

// finish rewrites a SELECT item or HAVING to read group values (_jf_gK)
// and finished aggregate calls (_jf_cK) instead of records.
func (a *incrAnalysis) finish(e any) (any, string) {
	m, ok := e.(map[string]any)
	if !ok || !incrIsExpr(m) {
		return a.finishValue(e)
	}
	if k, ok := a.groupAt[incrCanon(m)]; ok {
		return incrColumnRef(incrGroupColumn(k)), ""
	}
	switch incrStr(m["class"]) {
	case "FUNCTION":
		switch a.funcs[strings.ToLower(incrStr(m["function_name"]))] {
		case incrAggregate:
			k, reason := a.addCall(m)
			if reason != "" {
				return nil, reason
			}
			return incrColumnRef(incrCallColumn(k)), ""
		case incrAggMacro:
			return nil, incrStr(m["function_name"]) + " is not decomposable"
		}
	case "COLUMN_REF":
		return nil, fmt.Sprintf("column %s is neither grouped nor aggregated", strings.Join(incrStrings(m["column_names"]), "."))
	case "LAMBDA":
		return nil, "lambda outside an aggregate"
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		r, reason := a.finishValue(v)
		if reason != "" {
			return nil, reason
		}
		out[k] = r
	}
	return out, ""
}

func (a *incrAnalysis) finishValue(v any) (any, string) {
	switch x := v.(type) {
	case map[string]any:
		if incrIsExpr(x) {
			return a.finish(x)
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, reason := a.finishValue(e)
			if reason != "" {
				return nil, reason
			}
			out[k] = r
		}
		return out, ""
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, reason := a.finishValue(e)
			if reason != "" {
				return nil, reason
			}
			out[i] = r
		}
		return out, ""
	}
	return v, ""
}

// addCall records an aggregate call and the partials it needs.
func (a *incrAnalysis) addCall(m map[string]any) (int, string) {
	name := strings.ToLower(incrStr(m["function_name"]))
	if d, _ := m["distinct"].(bool); d {
		return 0, name + "(DISTINCT ...) is not decomposable"
	}
	if ob, _ := m["order_bys"].(map[string]any); ob != nil {
		if o, _ := ob["orders"].([]any); len(o) > 0 {
			return 0, name + " with ORDER BY is not decomposable"
		}
	}
	if x, _ := m["export_state"].(bool); x {
		return 0, name + " with EXPORT_STATE"
	}
	canon, ok := incrDecomposable[name]
	if !ok {
		return 0, name + " is not decomposable"
	}
	children, _ := m["children"].([]any)
	want := 1
	if canon == "count_star" {
		want = 0
	}
	if canon == "count" && len(children) == 0 {
		canon, want = "count_star", 0
	}
	if len(children) != want {
		return 0, fmt.Sprintf("%s with %d arguments is not decomposable", name, len(children))
	}
	if incrHasClass(children, "COLLATE") {
		return 0, "COLLATE inside " + name
	}
	call := incrClone(m).(map[string]any)
	call["function_name"], call["alias"] = canon, ""
	key := incrCanon(call)
	if k, ok := a.callAt[key]; ok {
		return k, ""
	}
	var parts []int
	if canon == "avg" {
		parts = []int{a.addPart(call, "sum"), a.addPart(call, "count")}
	} else {
		parts = []int{a.addPart(call, canon)}
	}
	a.callAt[key] = len(a.calls)
	a.calls = append(a.calls, call)
	a.finals = append(a.finals, parts)
	return len(a.calls) - 1, ""
}

func (a *incrAnalysis) addPart(call map[string]any, fn string) int {
	p := incrClone(call).(map[string]any)
	p["function_name"] = fn
	key := incrCanon(p)
	if k, ok := a.partAt[key]; ok {
		return k
	}
	a.partAt[key] = len(a.parts)
	a.parts = append(a.parts, p)
	return len(a.parts) - 1
}

// hasAggregate reports whether e calls an aggregate (or an aggregate macro).
func (a *incrAnalysis) hasAggregate(e any) bool {
	found := false
	incrWalk(e, func(m map[string]any) bool {
		if incrStr(m["class"]) == "FUNCTION" && a.funcs[strings.ToLower(incrStr(m["function_name"]))] != incrScalar {
			found = true
		}
		return !found
	})
	return found
}

// unqualify drops the table qualifier from column references, so every
// rewritten statement reads the dataset's columns by name alone.
func (a *incrAnalysis) unqualify(v any) any {
	return incrMapExprs(v, func(m map[string]any) (any, bool) {
		if incrStr(m["class"]) != "COLUMN_REF" {
			return nil, false
		}
		names := incrStrings(m["column_names"])
		switch {
		case len(names) >= 3 && strings.EqualFold(names[0], "main") && strings.EqualFold(names[1], a.dataset):
			names = names[2:]
		case len(names) >= 2 && strings.ToLower(names[0]) == a.binding:
			names = names[1:]
		default:
			return nil, false
		}
		out := incrClone(m).(map[string]any)
		out["column_names"] = incrAnys(names)
		return out, true
	})
}

// unqualifySchema turns main.dataset.col into dataset.col, for DESCRIBE.
func (a *incrAnalysis) unqualifySchema(v any) any {
	return incrMapExprs(v, func(m map[string]any) (any, bool) {
		names := incrStrings(m["column_names"])
		if incrStr(m["class"]) != "COLUMN_REF" || len(names) < 3 || !strings.EqualFold(names[0], "main") || !strings.EqualFold(names[1], a.dataset) {
			return nil, false
		}
		out := incrClone(m).(map[string]any)
		out["column_names"] = incrAnys(names[1:])
		return out, true
	})
}

// inline replaces references to select aliases (names that are not
// columns of the dataset) by the aliased expressions.
func (a *incrAnalysis) inline(v any, aliases map[string]any) any {
	return incrMapExprs(v, func(m map[string]any) (any, bool) {
		if incrStr(m["class"]) != "COLUMN_REF" {
			return nil, false
		}
		names := incrStrings(m["column_names"])
		if len(names) != 1 || a.cols[strings.ToLower(names[0])] {
			return nil, false
		}
		e, ok := aliases[strings.ToLower(names[0])]
		if !ok {
			return nil, false
		}
		out := incrClone(e).(map[string]any)
		out["alias"] = ""
		return out, true
	})
}

// plan types the rewrite with DESCRIBE and writes the plan's SQL.
func (a *incrAnalysis) plan(ctx context.Context, partitionBy []string) (*incrPlan, string, error) {
	// Every fragment DuckDB must write as text, in one round trip.
	var frags []any
	at := func(e any) int { frags = append(frags, e); return len(frags) - 1 }
	groupAt := make([]int, len(a.groups))
	for i, g := range a.groups {
		groupAt[i] = at(g)
	}
	partAt := make([]int, len(a.parts))
	for i, p := range a.parts {
		partAt[i] = at(p)
	}
	callAt := make([]int, len(a.calls))
	argAt := make([]int, len(a.calls))
	for i, c := range a.calls {
		callAt[i] = at(c)
		argAt[i] = -1
		if fn := incrStr(c["function_name"]); fn != "sum" && fn != "avg" {
			continue
		}
		if ch, _ := c["children"].([]any); len(ch) == 1 {
			argAt[i] = at(ch[0])
		}
	}
	itemAt := make([]int, len(a.outs))
	for i, o := range a.outs {
		itemAt[i] = at(o)
	}
	whereAt, havingAt := -1, -1
	if a.where != nil {
		whereAt = at(a.where)
	}
	if a.outHave != nil {
		havingAt = at(a.outHave)
	}
	texts, err := incrDeparseExprs(ctx, a.conn, a.tmpl, frags)
	if err != nil {
		return nil, "", err
	}

	cte := incrDatasetCTE(a.dataset, a.schema)
	outputs := a.outputs
	p := &incrPlan{Outputs: outputs, PartitionGroup: map[string]string{}}
	for _, name := range partitionBy {
		i := slices.IndexFunc(outputs, func(c marts.Column) bool { return c.Name == name })
		if i < 0 {
			return nil, "", fmt.Errorf("incremental plan: partition column %s is not a column of the mart", name)
		}
		k, ok := a.groupAt[incrCanon(a.items[i])]
		if !ok {
			return nil, "partition column " + name + " is not a group expression", nil
		}
		p.PartitionGroup[name] = incrGroupColumn(k)
	}

	// The types of group values, of the calls as the mart computes them,
	// and of the arguments of sum and avg (which must be numbers).
	from := " FROM " + duckdb.Ident(a.dataset)
	groupBy := ""
	if len(a.groups) > 0 {
		pos := make([]string, len(a.groups))
		for i := range pos {
			pos[i] = strconv.Itoa(i + 1)
		}
		groupBy = " GROUP BY " + strings.Join(pos, ", ")
	}
	var probe []string
	for i := range a.groups {
		probe = append(probe, texts[groupAt[i]])
	}
	for i := range a.calls {
		probe = append(probe, texts[callAt[i]])
	}
	for i := range a.calls {
		if argAt[i] >= 0 {
			probe = append(probe, "any_value("+texts[argAt[i]]+")")
		}
	}
	types, err := a.describe(ctx, cte+"SELECT "+strings.Join(probe, ", ")+from+groupBy)
	if err != nil {
		return nil, "incremental rewrite failed: " + err.Error(), nil
	}
	next := len(a.groups) + len(a.calls)
	for i, c := range a.calls {
		kind := incrStr(c["function_name"])
		if argAt[i] < 0 {
			continue
		}
		argType := types[next]
		next++
		if (kind == "sum" || kind == "avg") && !incrNumeric(argType) && !(kind == "sum" && argType == "BOOLEAN") {
			return nil, fmt.Sprintf("%s over %s is not decomposable", kind, argType), nil
		}
		if kind == "avg" && types[len(a.groups)+i] != "DOUBLE" {
			return nil, fmt.Sprintf("avg returning %s is not decomposable", types[len(a.groups)+i]), nil
		}
	}

	// The partial aggregates' own types, then the stored ones.
	var sel []string
	for i := range a.groups {
		sel = append(sel, texts[groupAt[i]]+" AS "+duckdb.Ident(incrGroupColumn(i)))
	}
	for i := range a.parts {
		sel = append(sel, texts[partAt[i]]+" AS "+duckdb.Ident(incrAggColumn(i)))
	}
	where := ""
	if whereAt >= 0 {
		where = " WHERE " + texts[whereAt]
	}
	raw, err := a.describe(ctx, cte+"SELECT "+strings.Join(sel, ", ")+from+where+groupBy)
	if err != nil {
		return nil, "incremental rewrite failed: " + err.Error(), nil
	}
	for i := range a.groups {
		g := incrGroup{Column: incrGroupColumn(i), SQL: texts[groupAt[i]], Type: incrStored(raw[i]), source: types[i]}
		if g.Type != raw[i] {
			sel[i] = "CAST(" + g.SQL + " AS " + g.Type + ") AS " + duckdb.Ident(g.Column)
		}
		p.Groups = append(p.Groups, g)
		p.Columns = append(p.Columns, incrColumn{Name: g.Column, Type: g.Type})
	}
	for i, part := range a.parts {
		fn := incrStr(part["function_name"])
		ag := incrAgg{Column: incrAggColumn(i), SQL: texts[partAt[i]], Merge: incrMerge[fn], Type: incrStored(raw[len(a.groups)+i]), count: fn == "count_star" || fn == "count"}
		if ag.Type != raw[len(a.groups)+i] {
			sel[len(a.groups)+i] = "CAST(" + ag.SQL + " AS " + ag.Type + ") AS " + duckdb.Ident(ag.Column)
		}
		p.Aggs = append(p.Aggs, ag)
		p.Columns = append(p.Columns, incrColumn{Name: ag.Column, Type: ag.Type})
	}
	p.PartialSQL = "SELECT " + strings.Join(sel, ", ") + from + where + groupBy

	for i, c := range a.calls {
		f := incrFinal{typ: types[len(a.groups)+i], kind: incrStr(c["function_name"]), args: a.finals[i]}
		if f.kind == "avg" {
			f.sql = fmt.Sprintf("CAST(%s AS DOUBLE) / CAST(%s AS DOUBLE)", duckdb.Ident(incrAggColumn(f.args[0])), duckdb.Ident(incrAggColumn(f.args[1])))
		} else {
			f.sql = duckdb.Ident(incrAggColumn(f.args[0]))
		}
		p.finals = append(p.finals, f)
	}
	for i := range a.outs {
		p.items = append(p.items, texts[itemAt[i]])
	}
	if havingAt >= 0 {
		p.having = texts[havingAt]
	}

	// The rewrite must bind and give the mart's columns.
	cols, err := describe(ctx, a.conn, cte+p.FinalSQL(p.MergeSQL(p.PartialSQL)))
	if err != nil {
		return nil, "incremental rewrite failed: " + err.Error(), nil
	}
	if !slices.Equal(cols, outputs) {
		return nil, fmt.Sprintf("incremental rewrite failed: columns %v, want %v", cols, outputs), nil
	}
	return p, "", nil
}

// describe returns the column types of query.
func (a *incrAnalysis) describe(ctx context.Context, query string) ([]string, error) {
	cols, err := describe(ctx, a.conn, query)
	if err != nil {
		return nil, err
	}
	types := make([]string, len(cols))
	for i, c := range cols {
		types[i] = c.Type
	}
	return types, nil
}

// incrDatasetCTE binds the dataset's name to an empty table of its schema.
func incrDatasetCTE(dataset string, schema []incrColumn) string {
	cols := make([]string, len(schema))
	for i, c := range schema {
		cols[i] = "CAST(NULL AS " + c.Type + ") AS " + duckdb.Ident(c.Name)
	}
	return "WITH " + duckdb.Ident(dataset) + " AS (SELECT " + strings.Join(cols, ", ") + " LIMIT 0) "
}

// incrDeparse has DuckDB write each statement of stmts as SQL text.
func incrDeparse(ctx context.Context, conn *sql.Conn, stmts []map[string]any) ([]string, error) {
	args := make([]any, len(stmts))
	calls := make([]string, len(stmts))
	for i, st := range stmts {
		js, err := json.Marshal(map[string]any{"error": false, "statements": []any{st}})
		if err != nil {
			return nil, fmt.Errorf("incremental plan: encode parse tree: %w", err)
		}
		args[i] = string(js)
		calls[i] = "json_deserialize_sql(CAST(? AS JSON))"
	}
	out := make([]string, len(stmts))
	dest := make([]any, len(stmts))
	for i := range out {
		dest[i] = &out[i]
	}
	if err := conn.QueryRowContext(ctx, "SELECT "+strings.Join(calls, ", "), args...).Scan(dest...); err != nil {
		return nil, fmt.Errorf("incremental plan: write sql: %w", err)
	}
	return out, nil
}

// incrDeparseExprs has DuckDB write each expression of exprs as SQL text:
// each becomes the one item of a SELECT without FROM, whose text is
// "SELECT " and the expression's.
func incrDeparseExprs(ctx context.Context, conn *sql.Conn, tmpl map[string]any, exprs []any) ([]string, error) {
	stmts := make([]map[string]any, len(exprs))
	for i, e := range exprs {
		st := incrClone(tmpl["statements"].([]any)[0]).(map[string]any)
		item := incrClone(e).(map[string]any)
		item["alias"] = ""
		st["node"].(map[string]any)["select_list"] = []any{item}
		stmts[i] = st
	}
	out, err := incrDeparse(ctx, conn, stmts)
	if err != nil {
		return nil, err
	}
	for i := range out {
		s, ok := strings.CutPrefix(out[i], "SELECT ")
		if !ok {
			return nil, fmt.Errorf("incremental plan: unexpected sql %q", out[i])
		}
		out[i] = s
	}
	return out, nil
}

// incrFunctions asks the catalog what each function of names is. A macro
// counts as an aggregate when its body (or a macro it calls) holds an
// aggregate or a window function: geomean(x) is exp(avg(ln(x))). One scan
// of duckdb_functions() (about 15 ms, whatever the filter) reads every
// aggregate and macro; macro bodies are parsed only when used.
func incrFunctions(ctx context.Context, conn *sql.Conn, names []string) (map[string]incrFn, error) {
	rows, err := conn.QueryContext(ctx, "SELECT DISTINCT lower(function_name), function_type, coalesce(macro_definition, '') FROM duckdb_functions() WHERE function_type IN ('aggregate', 'macro')")
	if err != nil {
		return nil, fmt.Errorf("incremental plan: read function catalog: %w", err)
	}
	aggregates := map[string]bool{}
	macros := map[string][]string{}
	for rows.Next() {
		var name, typ, def string
		if err := rows.Scan(&name, &typ, &def); err != nil {
			rows.Close()
			return nil, fmt.Errorf("incremental plan: read function catalog: %w", err)
		}
		if typ == "aggregate" {
			aggregates[name] = true
		} else {
			macros[name] = append(macros[name], def)
		}
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("incremental plan: read function catalog: %w", err)
	}

	kinds := map[string]incrFn{}
	state := map[string]int{} // macros: 1 being resolved, 2 resolved
	var kind func(name string) incrFn
	kind = func(name string) incrFn {
		if aggregates[name] {
			return incrAggregate
		}
		defs, ok := macros[name]
		if !ok || state[name] == 1 { // a scalar function, or a recursive macro
			return incrScalar
		}
		if state[name] == 2 {
			return kinds[name]
		}
		state[name] = 1
		k := incrScalar
		for _, def := range defs {
			called, ok := incrMacroCalls(ctx, conn, def)
			if !ok || slices.ContainsFunc(called, func(n string) bool { return n == "" || kind(n) != incrScalar }) {
				k = incrAggMacro // an unreadable body counts as an aggregate
			}
		}
		state[name], kinds[name] = 2, k
		return k
	}
	out := map[string]incrFn{}
	for _, n := range names {
		out[n] = kind(n)
	}
	return out, nil
}

// incrMacroCalls parses a macro's body and lists the functions it calls
// ("" for a window function or a subquery); false if it does not parse.
func incrMacroCalls(ctx context.Context, conn *sql.Conn, def string) ([]string, bool) {
	var js string
	if err := conn.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql(CAST(? AS VARCHAR)) AS VARCHAR)", "SELECT "+def).Scan(&js); err != nil {
		return nil, false
	}
	ast, err := incrDecode(js)
	if err != nil {
		return nil, false
	}
	var names []string
	incrWalk(ast["statements"], func(m map[string]any) bool {
		switch incrStr(m["class"]) {
		case "WINDOW", "SUBQUERY":
			names = append(names, "")
		}
		return true
	})
	incrFunctionNames(ast["statements"], &names)
	return names, true
}

// incrFunctionNames appends the names of the functions v calls.
func incrFunctionNames(v any, names *[]string) {
	incrWalk(v, func(m map[string]any) bool {
		if incrStr(m["class"]) == "FUNCTION" {
			*names = append(*names, strings.ToLower(incrStr(m["function_name"])))
		}
		return true
	})
}

// incrStored is the type a partial column is held in: the type itself,
// except HUGEINT, which Parquet would hold as DOUBLE.
func incrStored(t string) string {
	switch t {
	case "HUGEINT", "UHUGEINT":
		return "DECIMAL(38,0)"
	}
	return t
}

func incrNumeric(t string) bool {
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE":
		return true
	}
	return strings.HasPrefix(t, "DECIMAL(")
}

// The generic parse tree: an expression is an object with a "class".

func incrIsExpr(m map[string]any) bool {
	_, ok := m["class"].(string)
	return ok
}

// incrIsNull reports whether v is absent or the constant NULL (LIMIT ALL).
func incrIsNull(v any) bool {
	m, _ := v.(map[string]any)
	if m == nil {
		return true
	}
	val, _ := m["value"].(map[string]any)
	null, _ := val["is_null"].(bool)
	return incrStr(m["class"]) == "CONSTANT" && null
}

func incrStr(v any) string {
	s, _ := v.(string)
	return s
}

func incrStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = incrStr(e)
	}
	return out
}

func incrAnys(s []string) []any {
	out := make([]any, len(s))
	for i, e := range s {
		out[i] = e
	}
	return out
}

func incrColumnRef(name string) map[string]any {
	return map[string]any{"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": "", "column_names": []any{name}}
}

// incrWalk calls visitFunc on every expression of v, outermost first;
// visitFunc returns false to stop the walk.
func incrWalk(v any, visitFunc func(map[string]any) bool) bool {
	switch x := v.(type) {
	case map[string]any:
		if incrIsExpr(x) && !visitFunc(x) {
			return false
		}
		for _, e := range x {
			if !incrWalk(e, visitFunc) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !incrWalk(e, visitFunc) {
				return false
			}
		}
	}
	return true
}

// incrHasClass reports whether v holds an expression of class.
func incrHasClass(v any, class string) bool {
	found := false
	incrWalk(v, func(m map[string]any) bool {
		found = incrStr(m["class"]) == class
		return !found
	})
	return found
}

// incrMapExprs copies v, replacing each expression for which replaceFunc
// returns true (outermost first; a replacement is not walked into).
func incrMapExprs(v any, replaceFunc func(map[string]any) (any, bool)) any {
	switch x := v.(type) {
	case map[string]any:
		if incrIsExpr(x) {
			if r, ok := replaceFunc(x); ok {
				return r
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = incrMapExprs(e, replaceFunc)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = incrMapExprs(e, replaceFunc)
		}
		return out
	}
	return v
}

func incrClone(v any) any {
	return incrMapExprs(v, func(map[string]any) (any, bool) { return nil, false })
}

// incrCanon is an expression's identity for matching: its tree without
// source positions and aliases, column names in lower case (DuckDB
// resolves names case-insensitively).
func incrCanon(v any) string {
	b, _ := json.Marshal(incrCanonTree(v))
	return string(b)
}

func incrCanonTree(v any) any {
	switch x := v.(type) {
	case map[string]any:
		expr := incrIsExpr(x)
		out := make(map[string]any, len(x))
		for k, e := range x {
			if k != "query_location" && (!expr || k != "alias") {
				out[k] = incrCanonTree(e)
			}
		}
		if expr && incrStr(x["class"]) == "COLUMN_REF" {
			names := incrStrings(x["column_names"])
			for i := range names {
				names[i] = strings.ToLower(names[i])
			}
			out["column_names"] = incrAnys(names)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = incrCanonTree(e)
		}
		return out
	}
	return v
}
