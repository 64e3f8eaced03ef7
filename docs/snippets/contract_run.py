"""Run the contract suite (or part of it) from code, e.g. in a CI job of your own."""

import asyncio
import os
import sys

from client_sdk.contract import ContractConfig, format_summary, run_contract

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
TOKEN = os.environ.get("INTRADAY_ADMIN_TOKEN")  # the server's --admin-token, if it has one
SELECT = os.environ.get("INTRADAY_CONTRACT_SELECT", "")  # e.g. "s4_": only section 4


async def main() -> int:
    config = ContractConfig(
        url=URL, organizations=("contract-a", "contract-b"), admin_token=TOKEN, quick=True
    )
    report = await run_contract(config, select=[SELECT] if SELECT else [])
    print(format_summary(report))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
