/**
 * Metadata keys by which an attempt names the task its keeper holds and its
 * number. The executor stores them like any metadata; the keeper's node and
 * listings read them to tell attempts from the tasks users submitted.
 */
export const ATTEMPT_OF = "attemptOf";
export const ATTEMPT = "attempt";
