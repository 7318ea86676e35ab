"""Word lists the synthetic brain builds realistic entity names from (people, orgs, tech, places, ...)."""

from __future__ import annotations


def _words(text: str, sep: str | None = None) -> list[str]:
    return [w.strip() for w in text.split(sep) if w.strip()]


FIRST_NAMES = _words(
    """
James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph
Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Margaret Mark Sandra
Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian
Dorothy George Melissa Timothy Deborah Ronald Stephanie Edward Rebecca Jason Sharon Jeffrey Laura Ryan
Cynthia Jacob Kathleen Gary Amy Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry Pamela
Justin Emma Scott Nicole Brandon Helen Benjamin Samantha Samuel Katherine Gregory Christine Alexander Debra
Frank Rachel Patrick Carolyn Raymond Janet Jack Catherine Dennis Maria Jerry Heather Tyler Diane Aaron Ruth
Jose Julie Adam Olivia Nathan Joyce Henry Virginia Zachary Victoria Douglas Kelly Peter Lauren Kyle
Christina Noah Joan Ethan Evelyn Jeremy Judith Walter Megan Christian Andrea Keith Cheryl Roger Hannah Terry
Jacqueline Austin Martha Sean Gloria Gerald Teresa Carl Ann Harold Sara Dylan Madison Arthur Frances
Lawrence Kathryn Jordan Janice Jesse Jean Bryan Abigail Billy Alice Bruce Judy Gabriel Sophia Logan Grace
Alan Denise Juan Amber Wayne Doris Elijah Marilyn Randy Danielle Roy Beverly Vincent Isabella Ralph Theresa
Eugene Diana Russell Natalie Bobby Brittany Mason Charlotte Philip Marie Louis Kayla Priya Arjun Wei Mei
Hiroshi Yuki Ahmed Fatima Omar Leila Carlos Lucia Mateo Sofia Ivan Olga Dmitri Anya Kwame Amara Chen Ling
Raj Ananya Lars Ingrid
"""
)

LAST_NAMES = _words(
    """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson
Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis
Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera
Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart
Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim
Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo
Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler
Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds
Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford
Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman
Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon
Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice
Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kumar Sharma Singh
Tanaka Suzuki Yamamoto Wang Zhang Liu Yang Huang Zhao Ivanova Petrov Novak Kowalski Nielsen Larsen Johansson
Okafor Mensah
"""
)

ORG_PREFIXES = _words(
    """
Acme Northwind Contoso Globex Initech Umbrella Stark Wayne Cyberdyne Tyrell Soylent Vandelay Hooli Pied
Aperture Blue Red Green Silver Golden Iron Crystal Summit Pinnacle Horizon Vertex Quantum Nimbus Stratus
Cirrus Meridian Polaris Aurora Zenith Apex Keystone Cornerstone Bright Clear Deep Swift Bold True Prime Nova
Stellar Orbit Vector Lattice Helix Cobalt Indigo Sapphire Emerald Granite Cedar Maple Oak Willow Birch Aspen
Harbor Bay River Lake Falcon Eagle Hawk Raven Wolf Fox Bear Lion Tiger Otter Beacon Lighthouse Compass
Anchor Sterling Crescent Evergreen Frontier Pioneer Liberty Heritage Legacy Unity Catalyst Momentum Paragon
Sentinel Vanguard Atlas Titan Olympus
"""
)

ORG_SUFFIXES = _words(
    """
Systems Labs Analytics Holdings Group Technologies Partners Foundation Institute Capital Networks Robotics
Energy Health Bank Consulting Logistics Media Dynamics Software Solutions Ventures Industries
Pharmaceuticals Biosciences Security Semiconductors Aerospace Insurance Research
"""
)

TECH_QUALIFIERS = _words(
    """
Distributed Federated Incremental Adaptive Probabilistic Sparse Dense Quantized Streaming Columnar
Differential Contrastive Generative Recurrent Convolutional Graph Bayesian Stochastic Approximate
Hierarchical Vectorized Serverless Containerized Event-Driven Lock-Free Asynchronous Homomorphic
Zero-Knowledge Elastic Immutable Persistent Reactive Declarative Transactional Multimodal Self-Supervised
Retrieval-Augmented Low-Rank Mixed-Precision Speculative Vision Neural Semantic Temporal Spatial Edge Cloud
Quantum Optical Secure Reinforcement Transfer Causal Hybrid Modular Unified Scalable Robust Lightweight
"""
)

TECH_CORES = _words(
    """
Hash Table|Message Queue|Key-Value Store|Query Optimizer|Vector Index|Consensus Protocol|Neural
Network|Language Model|Attention Mechanism|Transformer|Autoencoder|Diffusion Model|Search Engine|
Cache Layer|File System|Stream Processor|Scheduler|Load Balancer|Service Mesh|Compiler|Garbage
Collector|Storage Engine|Inference Server|Feature Store|Data Pipeline|Embedding Model|Tokenizer|
Optimizer|Policy Gradient|Decision Tree|Random Forest|Gradient Boosting|Kalman Filter|Bloom Filter|
Skip List|B-Tree|Log-Structured Merge Tree|Circuit Breaker|Rate Limiter|Service Registry|Object Store|
Event Bus|Workflow Engine|Rendering Pipeline|Sensor Fusion|Path Planner|Speech Recognizer|Image
Classifier|Object Detector|Recommender System|Anomaly Detector|Time Series Database|Graph Database|
Blockchain Ledger|Encryption Scheme|Signature Scheme|Compression Codec|Network Protocol|Virtual
Machine|Runtime
""",
    "|",
)

KNOWN_TECH = _words(
    """
Kubernetes PostgreSQL Redis Kafka Spark Hadoop TensorFlow PyTorch React Angular Django Flask Rust Golang
TypeScript Docker Terraform Ansible Prometheus Grafana Elasticsearch MongoDB Cassandra Snowflake Airflow
Jupyter NumPy Pandas Linux FreeBSD Nginx GraphQL WebAssembly LanceDB DuckDB ClickHouse SQLite
"""
)

CONCEPT_DOMAINS = _words(
    """
Supply Chain|Customer Retention|Risk Management|Data Governance|Model Evaluation|Incident Response|
Capacity Planning|Cost Optimization|Product Strategy|Market Expansion|Talent Acquisition|Brand
Awareness|Regulatory Compliance|Climate Adaptation|Energy Efficiency|Urban Mobility|Public Health|
Financial Inclusion|Knowledge Management|Quality Assurance|Software Reliability|Privacy Engineering|
Threat Modeling|User Onboarding|Revenue Forecasting|Demand Planning|Content Moderation|Fraud Detection|
Access Control|Change Management|Vendor Management|Technical Debt|Developer Productivity|Carbon
Accounting|Pricing Strategy|Crisis Communication|Remote Work|Open Source|Machine Learning|Edge
Computing|Digital Identity|Data Literacy|Platform Engineering|Site Reliability|Observability|Disaster
Recovery|Procurement|Sustainability|Customer Experience|Workforce Planning
""",
    "|",
)

CONCEPT_NOUNS = _words(
    """
Strategy Framework Roadmap Principles Playbook Maturity Model Benchmark Policy Initiative Review Metrics
Assessment Architecture Standards Guidelines Audit Program Taxonomy Lifecycle Operating Model Charter
"""
)

PLACE_BASES = _words(
    """
Avalon Ridge Haven Falls Springs Harbor Crossing Heights Valley Point Bay Creek Hollow Grove Meadow Park
Hills Landing Fork Bend Shore Bluff Glen Mesa Rock Field Port Mount Vale Brook Dale Ford Wood Stead Gate
Water Marsh Cliff Isle Reach Pines Oaks Cove Lake Canyon Summit Plains Terrace Gardens Commons Junction
"""
)

PLACE_PREFIXES = _words(
    """
North South East West New Old Upper Lower Lake Port Fort Saint Mount Green Silver Cedar Maple Pine Oak Clear
Red Stone Rock Bright Fair Spring Sun Moon Star Iron Copper Golden Crystal Eagle Hawk Fox Elk Bear Wolf
Willow Ash Elm Birch
"""
)

KNOWN_PLACES = _words(
    """
London Paris Berlin Madrid Rome Vienna Prague Warsaw Stockholm Oslo Helsinki Copenhagen Dublin Lisbon
Amsterdam Brussels Zurich Geneva Tokyo Osaka Seoul Beijing Shanghai Singapore Mumbai Delhi Bangalore Sydney
Melbourne Auckland Toronto Vancouver Montreal Chicago Boston Seattle Austin Denver Atlanta Miami Lagos
Nairobi Accra Cairo Johannesburg Lima Bogota Santiago
"""
)

PRODUCT_BRANDS = _words(
    """
Orion Lumen Vega Nimbus Pulse Echo Nova Zephyr Quasar Titan Atlas Fusion Spark Flux Prism Aero Vertex Halo
Onyx Terra Sonic Blaze Kite Jet Comet Drift Glide Arc Volt Axis Sigma Delta Omega Alpha Crest Ember Frost
Tide Storm Breeze
"""
)

PRODUCT_LINES = _words(
    """
Pro Max Mini Air Ultra Lite Studio Go Plus Edge Core One Home Cloud Mobile Desk Hub Link Sense Vision
"""
)

PROJECT_CODENAMES = _words(
    """
Apollo Gemini Mercury Artemis Hermes Athena Poseidon Zeus Hera Demeter Hyperion Prometheus Icarus Daedalus
Orpheus Pegasus Phoenix Kraken Chimera Griffin Hydra Medusa Odyssey Voyager Pathfinder Discovery Endeavour
Challenger Columbia Enterprise Horizon Falcon Raptor Osprey Condor Heron Kestrel Merlin Sparrow Albatross
Pelican Mustang Bronco Stallion Cheetah Jaguar Panther Cougar Lynx Ocelot Puma Bison Mammoth Glacier
Avalanche Tundra Monsoon Typhoon Cyclone Tornado Thunder Lightning Granite Basalt Obsidian Quartz Topaz Jade
Amber Onyx Cobalt Neon Argon Xenon Krypton Helium Lithium Boron Carbon Sodium Radium Polaris Sirius Vega
Rigel Altair Deneb Antares Capella Castor Pollux Spica Arcturus Mira
"""
)

# Famous long form -> abbreviation: duplicates of the "abbreviation" kind start from these.
KNOWN_ABBREVIATIONS: tuple[tuple[str, str, str], ...] = (
    ("International Business Machines", "IBM", "organization"),
    ("Natural Language Processing", "NLP", "concept"),
    ("Massachusetts Institute of Technology", "MIT", "organization"),
    ("National Aeronautics and Space Administration", "NASA", "organization"),
    ("Amazon Web Services", "AWS", "organization"),
    ("Large Language Model", "LLM", "technology"),
    ("Retrieval-Augmented Generation", "RAG", "technology"),
    ("Continuous Integration", "CI", "concept"),
    ("Service Level Objective", "SLO", "concept"),
    ("Application Programming Interface", "API", "technology"),
    ("World Health Organization", "WHO", "organization"),
    ("European Central Bank", "ECB", "organization"),
    ("Graphics Processing Unit", "GPU", "technology"),
    ("Return on Investment", "ROI", "concept"),
    ("Key Performance Indicator", "KPI", "concept"),
    ("Search Engine Optimization", "SEO", "concept"),
)

# One name, two types: both are real, distinct entities and must never merge.
DECOY_NAMES: tuple[tuple[str, str, str], ...] = (
    ("Apollo", "person", "project"),
    ("Jordan", "person", "place"),
    ("Amazon", "organization", "place"),
    ("Mercury", "project", "technology"),
    ("Phoenix", "place", "project"),
    ("Python", "technology", "concept"),
    ("Orion", "product", "project"),
    ("Georgia", "person", "place"),
    ("Oracle", "organization", "concept"),
    ("Delta", "organization", "concept"),
    ("Atlas", "project", "organization"),
    ("Jaguar", "organization", "product"),
)

RECORD_TEMPLATES: tuple[str, ...] = (
    "{a} announced a partnership with {b} to work on {c}.",
    "Meeting notes: {a} presented the {c} plan; {b} raised concerns about timelines.",
    "{a} migrated the reporting stack to {c} after a review with {b}.",
    "Customer call with {b}: they asked whether {c} supports their {a} rollout.",
    "Incident review: {c} degraded for 40 minutes; {a} and {b} led the response.",
    "{a} wrote a design doc comparing {c} against the approach used at {b}.",
    "Quarterly update from {b}: adoption of {c} grew, with {a} as the main sponsor.",
    "{a} is moving to {b} next month and will hand over {c}.",
    "Slack thread: does anyone know who owns {c} at {b}? {a} might.",
    "{b} published a benchmark of {c}; {a} disputes the methodology.",
    "Hiring: {b} is looking for someone with {c} experience, referred by {a}.",
    "{a} opened an office near {b} to be closer to the {c} team.",
    "Roadmap: {c} lands in Q3; dependencies on {b} tracked by {a}.",
    "Retro: the {c} launch went well, thanks to {a}; {b} asks for better docs.",
)

SOURCES: tuple[str, ...] = ("slack", "email", "wiki", "meeting-notes", "tickets", "docs", "crm")
