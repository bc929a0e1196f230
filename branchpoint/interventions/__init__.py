"""The DoVer pipeline: segment, hypothesize, recommend, fork and replay, score, verdicts."""
