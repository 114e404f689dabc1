"""How torch's OpenMP threads wait for each other on the CPU: passively, unless the user says otherwise.

With the OpenMP runtime's default, a thread that reaches the end of a parallel region first spins, holding its
core, while it waits for the others. Beside another CPU-bound process on a 2-core machine that spinning takes the
core the late thread needs: one candidate's smoke training took several times as long as on one thread
(BENCHMARKS.md, 11). A passive wait (the thread sleeps) keeps two threads close to one thread there. The runtime
reads OMP_WAIT_POLICY once, when torch is first imported, so every entry point (run_search.py, train_proxy.py,
the benchmarks, the tests) imports this module before anything imports torch; worker processes inherit the
setting. A user's own OMP_WAIT_POLICY is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
