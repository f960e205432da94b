"""The process: the command line, logging, the garbage collector's tuning, the optional mypyc
build. The top layer: it may import any other.
"""
