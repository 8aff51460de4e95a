"""The fault suite. Its long cases are marked `slow` (deselect them with `-m "not slow"` for a quick local run);
every `make test` runs them, since a case that only a soak runs goes stale unseen. `make soak` (SOAK=1) runs the
same cases with more crashes each."""
