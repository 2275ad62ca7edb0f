"""Stand-in for AWS's `neuronxcc` package, put on sys.path only inside the simulator's sandbox runner."""
