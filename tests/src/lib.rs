//! slabfuse-tests: shared harness for the simulated kernel and real mounts (placeholder).
