"""Run detectors over a benchmark: tidy per-image scores (:mod:`.image`), per-pixel scores and dense
metrics (:mod:`.dense`), and the per-pixel score store (:mod:`.scoremaps`)."""
