"""Named build-time configurations the test suite runs every block at.

Together they cover: the default; a direct-mapped cache (1 way) with P = 1; a small fully
associative cache (1 set) with S = 64 and P > 1 not dividing the vector lengths; a wide, short
configuration with FIFO replacement. Small ``max_len`` / ``max_vectors`` keep simulations fast.
"""

from mercury_hw.config import MercuryConfig

CONFIGS: dict[str, MercuryConfig] = {
    "default": MercuryConfig(),
    "direct": MercuryConfig(lanes=1, max_len=64, sig_bits=8, sets=16, ways=1, policy="fifo",
                            pes=2, acc_width=24, max_vectors=64, seed=7),
    "fullassoc": MercuryConfig(lanes=3, max_len=100, sig_bits=64, sets=1, ways=8, policy="lru",
                               pes=3, acc_width=32, max_vectors=128, seed=0xFFFF_FFFF_FFFF_FFFF),
    "wide": MercuryConfig(lanes=8, max_len=256, sig_bits=12, sets=8, ways=2, policy="fifo",
                          pes=4, acc_width=24, max_vectors=256, seed=1),
}
