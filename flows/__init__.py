"""The Prefect flows, one per job; importing the package sends the core's logs to each run.

It also lets the core read S3 keys from a Prefect `aws-credentials` block
(`target.s3.credentials_block`, flows/aws_block.py): every process that runs
jobs (the CLI, `serve`, a worker's flow-run process) imports this package.
"""

from flows.aws_block import use_credentials_blocks
from flows.logs import send_core_logs

send_core_logs()
use_credentials_blocks()
