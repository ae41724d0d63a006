// Package invoke routes invocations to the worker running the function
// subtask that owns their key: the gateway routes Invoke requests with it,
// and workers the messages functions send to other functions. See Router.
package invoke
