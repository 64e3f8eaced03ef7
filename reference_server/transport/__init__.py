"""The server's wire modules: what reaches a socket and what leaves it.

- :mod:`.http_guard`: bounds on TCP connections before a request reaches
  the application (a header deadline, a cap, the file limit, quiet accept
  failures), with every uvicorn insider it needs in one table.
"""
