"""What runs leave for people: the run report's rows and names, and the history read from them.

Above the jobs (it reports their results), below the tasks, flows and CLI that show it.
"""
