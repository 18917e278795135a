"""Throughput of unsupnn's training loops against a bare PyTorch loop and scikit-learn, side by side.

A thin wrapper: the benchmark lives in unsupnn/benchmark.py and is also the console command
``unsupnn-benchmark``; ``python scripts/benchmark.py --help`` lists the options.
"""

from unsupnn.benchmark import main

if __name__ == "__main__":
    main()
