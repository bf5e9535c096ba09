// Package containerstate folds Docker container events into the state of
// each container, the way `docker ps -a` shows it: name, image, state
// (created, running, paused, exited), health, labels. One fold serves
// every side: the publisher's key-value bucket of container states
// (DOCKER_CONTAINERS), the gateway's snapshot (snapshot=1) and any client
// doing list-then-watch, so that all of them agree on what an event does.
//
// A state is carried as a container.state event (the payload the
// publisher writes after a gap: action "state", action_detail the state,
// attributes the labels plus name, image and health) together with the
// stream sequence of the last event it reflects ([State]).
//
// [Set.Apply] folds one stored event: events at or below a container's
// sequence are ignored (so that folding again from an earlier point is
// harmless), a dockcast.gap forgets every container of its node (the
// container.state events that follow it restore the ones that exist), and
// destroy removes the container. [Set.Track] is the same fold without
// building the changed states: the Set keeps what events change and
// builds a container's State when it is asked for, so that a burst of
// events costs no allocation per event (the publisher's keeper builds
// each state once per write).
//
// Entry points: Set, State, Key, Bucket.
package containerstate
