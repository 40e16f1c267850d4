// kgbuild starter queries for Neo4j Browser.
//
// Each query starts with a "// title: ..." line; the comment lines under it say what it
// shows and which parameters it takes. Set parameters in the Browser first, e.g.
//   :param type => 'COMPANY'
//   :param name => 'Apple Inc.'
// then paste the query. Graph model written by kgbuild's Neo4j sink:
//   (:Document {id, path, title})-[:HAS_CHUNK]->(:Chunk {id, position, start, end, text})
//   (:Chunk)-[:NEXT_CHUNK]->(:Chunk)
//   (:Chunk)-[:MENTIONS {start, end, confidence, text, rule, via}]->(:Entity:<TYPE> {id, type, key, name, aliases,
//                                                                            alias_counts, mention_count, confidence})
//   (:Entity)-[:<RELATION> {confidence, count, evidence, evidence_chunk_ids}]->(:Entity)
//   (:Community {id, level, title, parent, size, top_entities, top_terms, summary})      (kgbuild communities)
//   (:Entity)-[:IN_COMMUNITY {level}]->(:Community)-[:SUBCOMMUNITY_OF]->(:Community)

// title: Entity types and counts
// Parameters: none. A table of entity types and how many entities each has.
MATCH (e:Entity)
RETURN e.type AS type, count(*) AS entities, sum(e.mention_count) AS mentions
ORDER BY entities DESC;

// title: Entities of a type
// Parameters: $type, an entity type such as 'COMPANY', 'PERSON', 'GENE' or 'DRUG'.
// The most mentioned entities of that type, as a graph.
MATCH (e:Entity {type: $type})
RETURN e
ORDER BY e.mention_count DESC
LIMIT 50;

// title: Relations between entities
// Parameters: none. Every extracted relation (not the document structure), as a graph.
MATCH (a:Entity)-[r]->(b:Entity)
RETURN a, r, b
LIMIT 200;

// title: Entities of a document
// Parameters: $path, the document's path relative to the ingested folder, e.g. 'news/apple.txt'.
// The document, its chunks and the entities they mention.
MATCH (d:Document {path: $path})-[h:HAS_CHUNK]->(c:Chunk)
OPTIONAL MATCH (c)-[m:MENTIONS]->(e:Entity)
RETURN d, h, c, m, e;

// title: Evidence behind a relation
// Parameters: $head and $tail, entity names (e.g. 'Tim Cook', 'Apple Inc.'); $rel, a relation type
// such as 'CEO_OF'. The relation and the chunks it was extracted from (evidence_chunk_ids),
// with their documents; r.evidence holds the spans as a JSON string.
MATCH (h:Entity {name: $head})-[r]->(t:Entity {name: $tail})
WHERE type(r) = $rel
MATCH (c:Chunk) WHERE c.id IN r.evidence_chunk_ids
MATCH (d:Document)-[hc:HAS_CHUNK]->(c)
RETURN h, r, t, c, d, hc, r.evidence AS evidence;

// title: Neighbourhood of an entity
// Parameters: $name, an entity's canonical name (its aliases are matched too), e.g. 'Apple Inc.'.
// The entity, the entities it is related to, and the chunks that mention it.
MATCH (e:Entity)
WHERE e.name = $name OR $name IN coalesce(e.aliases, [])
MATCH (e)-[r]-(n)
RETURN e, r, n
LIMIT 100;

// title: Entities mentioned together
// Parameters: $name, an entity's canonical name. Other entities mentioned in the same chunks,
// with how many chunks they share.
MATCH (e:Entity {name: $name})<-[:MENTIONS]-(c:Chunk)-[:MENTIONS]->(o:Entity)
WHERE o <> e
RETURN o.name AS entity, o.type AS type, count(DISTINCT c) AS shared_chunks
ORDER BY shared_chunks DESC, entity
LIMIT 25;

// title: Why the names of an entity are one entity
// Parameters: $name, an entity's canonical name, e.g. 'Apple Inc.'. Each way it is written, the
// resolution rule that put those mentions in it ('exact': the same normalised name; a rule such as
// 'surname', 'aliases' or 'override'), the name they joined, and how often and where.
MATCH (d:Document)-[:HAS_CHUNK]->(:Chunk)-[m:MENTIONS]->(e:Entity {name: $name})
RETURN m.text AS written, m.rule AS rule, m.via AS joined, count(DISTINCT [m.doc_id, m.start, m.end]) AS mentions,
       collect(DISTINCT d.path) AS documents
ORDER BY mentions DESC, written;

// title: The largest communities at level 0
// Parameters: none. The coarsest communities (level 0), largest first: their titles, sizes, most
// central entities and key terms (`kgbuild communities` prints the same table).
MATCH (c:Community {level: 0})
RETURN c.id AS id, c.title AS title, c.size AS size, c.top_entities[..5] AS top_entities, c.top_terms[..5] AS top_terms
ORDER BY size DESC, id
LIMIT 25;

// title: The communities of an entity
// Parameters: $name, an entity's canonical name, e.g. 'Apple Inc.'. Its community at each level,
// coarse to fine, as a graph, with the path from each to its parent.
MATCH (e:Entity)
WHERE e.name = $name OR $name IN coalesce(e.aliases, [])
MATCH (e)-[m:IN_COMMUNITY]->(c:Community)
OPTIONAL MATCH (c)-[s:SUBCOMMUNITY_OF]->(p:Community)
RETURN e, m, c, s, p;

// title: The members of a community
// Parameters: $community, a community id such as 'c0-3f2a9c1b' (`kgbuild communities` lists them).
// The community, its member entities and the relations among them, as a graph.
MATCH (c:Community {id: $community})<-[m:IN_COMMUNITY]-(e:Entity)
OPTIONAL MATCH (e)-[r]->(o:Entity)-[:IN_COMMUNITY]->(c)
RETURN c, m, e, r, o
LIMIT 300;

// title: The communities of a document
// Parameters: $path, the document's path relative to the ingested folder, e.g. 'news/apple.txt'.
// The level-0 communities of the entities the document mentions, with how many of them each holds.
MATCH (d:Document {path: $path})-[:HAS_CHUNK]->(:Chunk)-[:MENTIONS]->(e:Entity)-[:IN_COMMUNITY]->(c:Community {level: 0})
RETURN c.id AS id, c.title AS title, count(DISTINCT e) AS entities
ORDER BY entities DESC, id;
