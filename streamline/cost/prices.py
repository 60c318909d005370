"""The one reviewed price table the cost model uses: AWS list prices in us-east-1, with sources.

Every price is the first (smallest) usage tier, on-demand, without free tier, Savings Plans or
taxes: a cost per million events should not depend on what else the account runs. Each line
names where it was read; pages that AWS renders client-side were read through copies of the
page or third-party summaries, and say so. Review the whole table when ``AS_OF`` gets old.

Example::

    from streamline.cost.prices import PRICES

    PRICES.price("lambda_arm64_gb_second").usd        # 0.0000133334
    PRICES.as_of                                      # "2026-11-28"
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["AS_OF", "PRICES", "REGION", "Price", "PriceTable"]

AS_OF = "2026-11-28"
REGION = "us-east-1"

_LAMBDA = "https://aws.amazon.com/lambda/pricing/"
_KINESIS = "https://aws.amazon.com/kinesis/data-streams/pricing/"
_SQS = "https://aws.amazon.com/sqs/pricing/"
_DYNAMODB = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
_SFN = "https://aws.amazon.com/step-functions/pricing/"
_CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"
_XRAY = "https://aws.amazon.com/xray/pricing/"
_EVENTS = "https://aws.amazon.com/eventbridge/pricing/"


@dataclass(frozen=True, slots=True)
class Price:
    """One list price: ``usd`` per ``per`` of ``unit``."""

    key: str
    usd: float
    per: float
    unit: str
    source: str
    note: str = ""

    @property
    def unit_price(self) -> float:
        """Dollars for one ``unit``."""
        return self.usd / self.per


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by key, for one region, as reviewed on ``as_of``."""

    region: str
    as_of: str
    prices: tuple[Price, ...]

    def price(self, key: str) -> Price:
        for price in self.prices:
            if price.key == key:
                return price
        raise KeyError(f"no price {key!r} in the {self.region} table of {self.as_of}")

    def unit(self, key: str) -> float:
        """Dollars for one unit of ``key`` (e.g. one GB-second, one request)."""
        return self.price(key).unit_price

    def __iter__(self) -> Iterator[Price]:
        return iter(self.prices)


PRICES = PriceTable(
    region=REGION,
    as_of=AS_OF,
    prices=(
        # -- Lambda ----------------------------------------------------------------------------
        Price(
            "lambda_requests",
            0.20,
            1_000_000,
            "request",
            _LAMBDA,
            "$0.20 per 1M requests, both architectures; async invocations and event source "
            "mapping batches count one request each.",
        ),
        Price(
            "lambda_x86_64_gb_second",
            0.0000166667,
            1,
            "GB-second",
            _LAMBDA,
            "first 6 billion GB-s/month tier (read via cloudchipr.com/blog/aws-lambda-pricing "
            "and a copy of the AWS page; AWS renders the rate client-side).",
        ),
        Price(
            "lambda_arm64_gb_second",
            0.0000133334,
            1,
            "GB-second",
            _LAMBDA,
            "first 7.5 billion GB-s/month tier; same sources as x86_64.",
        ),
        # -- Kinesis Data Streams (we deploy provisioned shards: stacks/ingest.py) --------------
        Price(
            "kinesis_shard_hour",
            0.015,
            1,
            "shard-hour",
            _KINESIS,
            "provisioned mode; the AWS page renders rates client-side, $0.015 read from "
            "kindatechnical.com's Kinesis pricing lesson. Unsure: verify on the AWS page.",
        ),
        Price(
            "kinesis_put_payload_unit",
            0.014,
            1_000_000,
            "PUT payload unit",
            _KINESIS,
            "each 25 KB chunk of a record is one unit (definition from the AWS page); the "
            "$0.014 per million rate is from memory of the AWS page, not found in a stored "
            "copy. Unsure: verify. GetRecords (including Lambda's) is not charged in "
            "provisioned mode.",
        ),
        Price(
            "kinesis_extended_retention_shard_hour",
            0.02,
            1,
            "shard-hour",
            _KINESIS,
            "retention beyond 24 h up to 7 days (prod keeps 168 h). Unsure: rate from memory "
            "of the AWS page, not found in a stored copy.",
        ),
        # -- SQS -------------------------------------------------------------------------------
        Price(
            "sqs_standard_request",
            0.40,
            1_000_000,
            "request",
            _SQS,
            "each 64 KB chunk of a request's payload is one request; read via "
            "factualminds.com and cloudburn.io SQS pricing guides (2026).",
        ),
        Price(
            "sqs_fifo_request",
            0.50,
            1_000_000,
            "request",
            _SQS,
            "FIFO send/receive/delete/change-visibility; same sources.",
        ),
        # -- DynamoDB on-demand (price cut of 1 Nov 2024) ---------------------------------------
        Price(
            "dynamodb_write_request_unit",
            0.625,
            1_000_000,
            "write request unit",
            _DYNAMODB,
            "one WRU per 1 KB written (two for transactional writes); read via "
            "airbyte.com's DynamoDB pricing guide (2025).",
        ),
        Price(
            "dynamodb_read_request_unit",
            0.125,
            1_000_000,
            "read request unit",
            _DYNAMODB,
            "one RRU per strongly consistent 4 KB read (half for eventually consistent).",
        ),
        Price(
            "dynamodb_streams_lambda_read",
            0.0,
            1,
            "stream read request",
            _DYNAMODB,
            "GetRecords made by a Lambda trigger is free (AWS page); other readers pay "
            "$0.02 per 100,000 stream read request units (not used here).",
        ),
        # -- Step Functions --------------------------------------------------------------------
        Price(
            "sfn_standard_state_transition",
            0.025,
            1_000,
            "state transition",
            _SFN,
            "Standard workflows, US East (N. Virginia), from the AWS page's region table; "
            "retries count as transitions.",
        ),
        # -- CloudWatch ------------------------------------------------------------------------
        Price(
            "cloudwatch_logs_ingestion_gb",
            0.50,
            1,
            "GB ingested",
            _CLOUDWATCH,
            "Standard class; Lambda logs are vended-log tiered since 1 May 2025 and the first "
            "10 TB tier stays $0.50 (duckbillgroup.com, hykell.com).",
        ),
        Price(
            "cloudwatch_custom_metric_month",
            0.30,
            1,
            "metric-month",
            _CLOUDWATCH,
            "first 10,000 metrics; EMF metrics count the same (signoz.io pricing guide).",
        ),
        Price(
            "cloudwatch_put_metric_data_request",
            0.01,
            1_000,
            "request",
            _CLOUDWATCH,
            "API requests; EMF (what our functions use) has no request charge. Unsure: rate "
            "from memory of the AWS page.",
        ),
        # -- X-Ray and EventBridge -------------------------------------------------------------
        Price(
            "xray_trace_recorded",
            5.00,
            1_000_000,
            "trace recorded",
            _XRAY,
            "$0.000005 per trace beyond the free tier (AWS page, de/cn copies).",
        ),
        Price(
            "eventbridge_custom_event",
            1.00,
            1_000_000,
            "event",
            _EVENTS,
            "custom events, each 64 KB chunk one event. Unsure: rate from memory, and whether "
            "Lambda Destinations' OnSuccess records to a bus are billed as custom events.",
        ),
    ),
)
