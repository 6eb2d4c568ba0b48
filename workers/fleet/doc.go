// Package fleet turns a pipeline into the workers that run it: which step
// runs on which dataset with which handler. `jetfleet dev` runs every
// member in one process under a supervisor tree; `jetfleet worker STEP`
// runs the members of one step.
package fleet
