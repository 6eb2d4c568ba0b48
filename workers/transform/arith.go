package transform

import (
	"github.com/expr-lang/expr/ast"

	"github.com/jetfleet/jetfleet/pipeline"
)

// arith is a derive expression that is plain arithmetic (+ - * / and
// negation over fields and number literals), evaluated over a record's
// fields without building the map of variables expr needs, which would
// cost more than the rest of the transform. It computes what expr
// computes: float64 arithmetic, since a record's numbers are float64 to
// an expression and a float64 with an int literal is float64 there too.
type arith struct {
	op          byte // 'v' variable, 'c' constant, '-' unary minus, or a binary + - * /
	name        string
	c           float64
	left, right *arith
}

// maxExactInt bounds the integer literals taken as float64: beyond it
// float64 and expr's int arithmetic may differ.
const maxExactInt = 1 << 53

// compileArith returns the arithmetic of n, or nil when n is anything
// else, or when part of it is integer-only arithmetic (expr keeps that
// int, with Go's int overflow, and a float64 would differ).
func compileArith(n ast.Node) *arith {
	a, hasFloat := compileNode(n)
	if a == nil || !hasFloat {
		return nil
	}
	return a
}

// compileNode returns n's arithmetic and whether it involves a float (a
// variable or a float literal).
func compileNode(n ast.Node) (*arith, bool) {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		return &arith{op: 'v', name: x.Value}, true
	case *ast.FloatNode:
		return &arith{op: 'c', c: x.Value}, true
	case *ast.IntegerNode:
		if x.Value > maxExactInt || x.Value < -maxExactInt {
			return nil, false
		}
		return &arith{op: 'c', c: float64(x.Value)}, false
	case *ast.ConstantNode:
		switch v := x.Value.(type) {
		case float64:
			return &arith{op: 'c', c: v}, true
		case int:
			if v > maxExactInt || v < -maxExactInt {
				return nil, false
			}
			return &arith{op: 'c', c: float64(v)}, false
		}
	case *ast.UnaryNode:
		if x.Operator != "-" {
			return nil, false
		}
		a, f := compileNode(x.Node)
		if a == nil || !f {
			return nil, false
		}
		return &arith{op: '-', left: a}, true
	case *ast.BinaryNode:
		if len(x.Operator) != 1 || !isArithOp(x.Operator[0]) {
			return nil, false
		}
		l, lf := compileNode(x.Left)
		r, rf := compileNode(x.Right)
		if l == nil || r == nil || !lf && !rf {
			return nil, false
		}
		return &arith{op: x.Operator[0], left: l, right: r}, true
	}
	return nil, false
}

func isArithOp(c byte) bool { return c == '+' || c == '-' || c == '*' || c == '/' }

// eval computes the expression over f; false when a variable is not a
// float64 to expr (missing, null, a string, a Go integer, a number out of
// range), which expr, not this, must handle (and report).
func (a *arith) eval(f *pipeline.Fields) (float64, bool) {
	switch a.op {
	case 'v':
		v, ok := f.Get(a.name)
		if !ok {
			return 0, false
		}
		return v.ExprFloat()
	case 'c':
		return a.c, true
	case '-':
		if a.right == nil {
			x, ok := a.left.eval(f)
			return -x, ok
		}
	}
	x, ok := a.left.eval(f)
	if !ok {
		return 0, false
	}
	y, ok := a.right.eval(f)
	if !ok {
		return 0, false
	}
	switch a.op {
	case '+':
		return x + y, true
	case '-':
		return x - y, true
	case '*':
		return x * y, true
	}
	return x / y, true
}
