package stream

// PipelineCounts returns how many batches w sent before the one ahead of
// them was acknowledged, and how many of those the stream refused for an
// expectation that did not hold. Read it once Run has returned.
func PipelineCounts(w *Writer) (sentAhead, mispredictions int) { return w.sentAhead, w.mispredictions }
