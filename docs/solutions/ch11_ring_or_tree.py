"""Chapter 11, exercise 2: ring against tree all-reduce, and when latency takes over.

    python docs/solutions/ch11_ring_or_tree.py

A ring sends 2 (N-1)/N * S bytes per rank in 2 (N-1) steps. A pipelined binary tree
(reduce towards the root, broadcast back, the message cut into pieces that stream along
the tree) sends about 2 S per rank on its busiest link, in about 2 log2(N) steps. The
bandwidth terms are the same for large N; only the ring is cheaper for a few ranks
(its factor (N-1)/N), and only the tree's latency grows slowly. Over 100 Gb/s Ethernet
(25 us per step): the paper preset's 637 MiB favour the ring up to about 50 ranks and the
two stay within 10% up to several hundred; the small preset's 1.8 MiB are latency-bound
in the ring from 7 ranks on, where the tree takes over. That is why NCCL has both and
picks one by message size and rank count.
"""
import math

BANDWIDTH, LATENCY = 11e9, 25e-6          # 100 Gb/s Ethernet, as in benchmarks/distributed.py


def ring(nbytes, n):
    return 2 * (n - 1) / n * nbytes / BANDWIDTH + 2 * (n - 1) * LATENCY


def tree(nbytes, n):
    return 2 * nbytes / BANDWIDTH + 2 * math.ceil(math.log2(n)) * LATENCY


paper, small = 637 * 2 ** 20, 1.83 * 2 ** 20
paper_crossover = next(n for n in range(2, 4096) if tree(paper, n) < ring(paper, n))
small_crossover = next(n for n in range(2, 4096) if tree(small, n) < ring(small, n))
latency_bound = next(n for n in range(2, 4096) if 2 * (n - 1) * LATENCY > 2 * (n - 1) / n * small / BANDWIDTH)
assert 32 <= paper_crossover <= 64, paper_crossover
assert ring(paper, 2) < 0.55 * tree(paper, 2)                       # two ranks: the ring halves it
assert abs(ring(paper, 256) / tree(paper, 256) - 1) < 0.1           # many: within 10%
assert small_crossover <= 8 and latency_bound <= 8, (small_crossover, latency_bound)
print(f"paper preset: the tree wins from {paper_crossover} ranks; small preset: from {small_crossover}, "
      f"where the ring is latency-bound from {latency_bound}")
