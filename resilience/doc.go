// Package resilience is a8's Gremlin-style resilience testing: the pure logic of recipes and
// checks, which the controller's recipe handlers, the a8ctl recipe-run command and Go programs
// share, and Run, which drives a recipe on a live system through the controller.
//
// A recipe, as Amalgam8's Gremlin had it, is three things:
//
//   - a topology: the services of the application ("name" or "name:tag1,tag2", such as
//     "reviews:version=v2") and which calls which (dependencies);
//   - scenarios: gremlins, the faults to inject (delay_requests, abort_requests,
//     partition_services, crash_service, overload_service, ...);
//   - a header and pattern (default X-Request-ID, any value) that mark the test's requests, so
//     that only they get the faults.
//
// Rules validates a recipe and translates it into action rules for the controller: faults
// (delay, abort) and trace actions that make the sidecars record every test request under the
// recipe's id (gremlin_recipe_id=<id>). The test's load then runs, and the records are evaluated
// against a checklist with Evaluate: bounded_response_time, http_status, http_success_status,
// at_most_requests, num_requests, bounded_retries, circuit_breaker, bulkhead and no_proxy_errors.
// Results are Amalgam8's ({...check, "result": bool, "errormsg": "..."}); Summary renders them
// as a8ctl's table.
//
// DecodeTopology, DecodeScenarios and DecodeChecklist read the files a8ctl recipe-run takes, in
// JSON or YAML, strictly, with errors that give the field's path. The wire types are in package
// api (api.Topology, api.Scenarios, api.Gremlin, api.RecipeRequest, api.Checklist, api.Check,
// api.CheckResult, api.Record).
//
// For Go programs, BoundedResponseTime, HTTPStatus, CircuitBreaker, ... build checks, and
// DelayRequests, AbortRequests, PartitionServices, CrashService and OverloadService build
// gremlins:
//
//	req := api.RecipeRequest{
//		Topology:  topology,
//		Scenarios: api.Scenarios{Gremlins: []api.Gremlin{
//			resilience.DelayRequests("reviews:version=v2", "ratings:version=v1", 7*time.Second, 1),
//		}},
//	}
//	rules, err := resilience.Rules(id, req)
//	...
//	results := resilience.Evaluate([]api.Check{
//		resilience.BoundedResponseTime("gateway:version=none", "productpage:version=v1", 7*time.Second),
//		resilience.HTTPStatus("productpage:version=v1", "reviews:version=v2", 200),
//	}, records, resilience.EvalOptions{Topology: &topology})
//	fmt.Print(resilience.Summary(results))
//
// Differences from Amalgam8 worth knowing: one action rule per (source, destination name) pair
// rather than per edge, since a sidecar applies only the first matching action rule; rule priority
// RulePriority (100) rather than 10; bounded_response_time reads request_time (the caller's view)
// in milliseconds; bounded_retries' wait_time is really checked; the assertions of Gremlin's
// standalone SDK (circuit_breaker, bulkhead, no_proxy_errors, ...) work on a8's records; and
// "no requests from A to B were recorded (N records in all)" replaces "No log entries found".
package resilience
