"""Seeds the sandbox stack's data services (run in the backend container at install).

MongoDB and Qdrant are STAND-INS (nx-27017 and a stdlib HTTP server); Milvus is the
real Milvus 2.3.5 standalone server. Each gets a small, recognisable data set; a
service that already holds it is left alone, so the script can run again.
"""
import json
import os
import urllib.request

import pymongo
from pymilvus import MilvusClient

DIM = 8


def vector(i):
    return [((i * 7 + k * 3) % 11) / 10.0 for k in range(DIM)]


def seed_mongo():
    db = pymongo.MongoClient("mongodb", 27017, serverSelectionTimeoutMS=10000)["layra"]
    if "conversations" in db.list_collection_names():
        return "mongodb: already seeded"
    db.conversations.insert_many(
        [{"_id": f"conv-{i:03d}", "user": f"user{i % 7}", "turns": i % 5 + 1, "title": f"Conversation {i}"}
         for i in range(120)])
    db.files.insert_many([{"_id": f"file-{i:02d}", "name": f"doc-{i}.pdf", "pages": i + 1} for i in range(20)])
    return "mongodb: 120 conversations, 20 files"


def qdrant(method, path, body=None):
    request = urllib.request.Request(
        f"http://qdrant:6333{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "api-key": os.environ.get("QDRANT_API_KEY", "")})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def seed_qdrant():
    names = [c["name"] for c in qdrant("GET", "/collections")["result"]["collections"]]
    if "kb_vectors" in names:
        return "qdrant: already seeded"
    qdrant("PUT", "/collections/kb_vectors", {"vectors": {"size": DIM, "distance": "Cosine"}})
    qdrant("PUT", "/collections/kb_vectors/points?wait=true",
           {"points": [{"id": i, "vector": vector(i), "payload": {"kb": i % 3}} for i in range(1, 301)]})
    return "qdrant: kb_vectors, 300 points"


def seed_milvus():
    client = MilvusClient(uri="http://milvus-standalone:19530", timeout=30)
    if client.has_collection("kb_chunks"):
        return "milvus: already seeded"
    client.create_collection("kb_chunks", dimension=DIM)
    client.insert("kb_chunks", [{"id": i, "vector": vector(i), "text": f"chunk {i}"} for i in range(1, 201)])
    client.flush("kb_chunks")
    return "milvus: kb_chunks, 200 rows"


if __name__ == "__main__":
    for seed in (seed_mongo, seed_qdrant, seed_milvus):
        print(f"sandbox: seeded {seed()}")
