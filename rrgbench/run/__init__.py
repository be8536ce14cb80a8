"""The run lifecycle: train one configuration (loop, state, checkpoints, resume, selection), evaluate a saved
model, measure its cost, and run suites of many runs. Only rank 0 writes, through :mod:`rrgbench.run.writer`."""
