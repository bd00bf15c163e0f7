"""An S3-compatible server on loopback (moto in server mode) and the Airflow connection to reach it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.connections import aws_conn_json
from tests.support.net import free_port

S3_CONN_ID = "hailuo_test_s3"
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


@dataclass
class S3Server:
    endpoint_url: str
    conn_id: str = S3_CONN_ID

    def conn_json(self) -> str:
        return aws_conn_json(self.endpoint_url, ACCESS_KEY, SECRET_KEY)

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        response = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in response.get("Contents", []))

    def multipart_uploads(self, bucket: str) -> list[str]:
        response = self.client().list_multipart_uploads(Bucket=bucket)
        return [upload["Key"] for upload in response.get("Uploads", [])]

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()


@contextmanager
def moto_s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()
