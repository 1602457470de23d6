"""payment: a mock payment provider with a realistic latency distribution and documented test cards."""
