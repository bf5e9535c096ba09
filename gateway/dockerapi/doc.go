// Package dockerapi answers the read-only part of the Docker Engine API that
// `docker events` and Docker SDKs use for events: GET/HEAD /_ping, GET
// /version and GET /events, each also under a /v1.NN/ prefix, so that
//
//	DOCKER_HOST=tcp://gateway:8080 docker events --since 1h --filter type=container
//
// prints what each engine's own `docker events` would have printed, from
// dockcast's stream. Everything else under the API answers 404 in Docker's
// error shape ({"message":"page not found"}).
//
// The package knows nothing of JetStream or of the gateway's clients: the
// events come from a Source that the gateway implements.
//
// Entry points:
//   - NewHandler: the http.Handler for the API's paths (IsAPIPath tells the
//     gateway's router which paths are the API's).
//   - Message and AppendLine: a dockcast event back in Docker's own JSON
//     shape, field for field (legacy status/id/from included), without the
//     attributes dockcast adds.
//   - ParseQuery: Docker's since, until and filters query arguments, with
//     Docker's error messages; ParseFilters and ParseTimestamp are its parts.
//   - Source, Cursor, Item: what the /events writer reads from.
package dockerapi
