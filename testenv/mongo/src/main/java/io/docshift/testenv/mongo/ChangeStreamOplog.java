package io.docshift.testenv.mongo;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.CursorNotFoundException;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.oplog.Oplog;

/**
 * Wraps mongo-java-server's oplog to (a) signal every write (used by {@link TestBackend} to let a
 * change-stream getMore wait for data) and (b) correct change-stream events towards what a real
 * MongoDB server sends, because docshift's tests depend on them:
 *
 * <ul>
 *   <li>{@code update} events: mongo-java-server puts the update specification into
 *       {@code documentKey}; here it becomes {@code {_id: ...}} from the oplog entry.</li>
 *   <li>A whole-document replacement is reported as {@code replace} with the new document as
 *       {@code fullDocument} (mongo-java-server reports {@code update}).</li>
 *   <li>{@code update} events get a best-effort {@code updateDescription} ({@code $set} values,
 *       {@code $unset} fields; other operators' paths are filled from the looked-up document when
 *       {@code fullDocument: "updateLookup"} was asked for).</li>
 *   <li>{@code fullDocument} of an {@code update} event is only present with
 *       {@code fullDocument: "updateLookup"} (null if the document is gone), as on a real server;
 *       mongo-java-server otherwise returns a partial "delta" document there.</li>
 *   <li>Every event gets {@code ns: {db, coll}}.</li>
 *   <li>With {@code fullDocumentBeforeChange: "whenAvailable"} or {@code "required"},
 *       {@code update}, {@code replace} and {@code delete} events get
 *       {@code fullDocumentBeforeChange}: the document before the change, which {@link PreImages}
 *       stored in the oplog entry if the collection had pre-images enabled at the time of the
 *       write. Otherwise it is null ("whenAvailable"), or the getMore fails with
 *       NoMatchingDocument and the cursor is closed ("required"), as on MongoDB 6.0+.</li>
 * </ul>
 *
 * <p>It also enforces the history limits of {@link OplogHistory} ({@code docshiftTruncateOplog}):
 * resume points before the truncation point and cursors that missed deleted entries fail with
 * ChangeStreamHistoryLost (286), and malformed resume tokens fail with FailedToParse (9) or
 * InvalidResumeToken (260) instead of mongo-java-server's "Unknown error".
 *
 * <p>The corrections run after the change stream's own pipeline stages, so a {@code $match} on
 * {@code operationType: "replace"} or on {@code ns}/{@code updateDescription} does not see them.
 */
final class ChangeStreamOplog implements Oplog {

    private final Oplog delegate;
    private final MongoCollection<Document> oplogCollection;
    private final CursorRegistry cursorRegistry;
    private final PreImages preImages;
    private final OplogHistory history;
    private final Runnable onChange;

    ChangeStreamOplog(Oplog delegate, MongoCollection<Document> oplogCollection, CursorRegistry cursorRegistry,
                      PreImages preImages, OplogHistory history, Runnable onChange) {
        this.delegate = delegate;
        this.oplogCollection = oplogCollection;
        this.cursorRegistry = cursorRegistry;
        this.preImages = preImages;
        this.history = history;
        this.onChange = onChange;
    }

    @Override
    public void handleInsert(String namespace, List<Document> documents) {
        delegate.handleInsert(namespace, documents);
        onChange.run();
    }

    @Override
    public void handleUpdate(String namespace, Document selector, Document query, List<Object> modifiedIds) {
        delegate.handleUpdate(namespace, selector, query, modifiedIds);
        onChange.run();
    }

    @Override
    public void handleDelete(String namespace, Document query, List<Object> deletedIds) {
        delegate.handleDelete(namespace, query, deletedIds);
        onChange.run();
    }

    @Override
    public void handleDropCollection(String namespace) {
        delegate.handleDropCollection(namespace);
        // as on MongoDB, the option goes with the collection: a re-created one starts without it
        preImages.setEnabled(namespace, false);
        onChange.run();
    }

    @Override
    public Cursor createCursor(Document changeStreamDocument, String namespace, Aggregation aggregation) {
        BeforeChange beforeChange = BeforeChange.of(changeStreamDocument.get("fullDocumentBeforeChange"));
        // the oplog position the stream starts after: what it has "scanned" so far (see OplogHistory)
        long scanned;
        if (changeStreamDocument.get("startAfter") != null) {
            scanned = resumeTokenTime(changeStreamDocument.get("startAfter"), "startAfter");
            history.checkResumePoint(scanned);
        } else if (changeStreamDocument.get("resumeAfter") != null) {
            scanned = resumeTokenTime(changeStreamDocument.get("resumeAfter"), "resumeAfter");
            history.checkResumePoint(scanned);
        } else if (changeStreamDocument.get("startAtOperationTime") != null) {
            if (!(changeStreamDocument.get("startAtOperationTime") instanceof BsonTimestamp start)) {
                throw new MongoServerError(14, "TypeMismatch",
                    "BSON field '$changeStream.startAtOperationTime' is the wrong type, expected type 'timestamp'");
            }
            history.checkResumePoint(start.getValue());
            scanned = start.getValue() - 1; // the entry at startAtOperationTime itself is still to be read
        } else {
            scanned = history.newestWritten();
        }
        Cursor cursor = delegate.createCursor(changeStreamDocument, namespace, aggregation);
        boolean lookup = "updateLookup".equals(changeStreamDocument.get("fullDocument"));
        ChangeStreamCursor wrapped = new ChangeStreamCursor(cursor, namespace, lookup, beforeChange, scanned);
        if (isRegistered(cursor)) {
            // getMore finds cursors through the registry: make it hand out the wrapper
            cursorRegistry.remove(cursor.getId());
            cursorRegistry.add(wrapped);
        }
        return wrapped;
    }

    /**
     * The oplog timestamp of a resume token. mongo-java-server's tokens are {@code {_data: <hex>}},
     * the hex being the 64-bit timestamp value; it answers a malformed one with "Unknown error:
     * For input string ...". Here: FailedToParse (9) for a non-hex string, as MongoDB answers,
     * InvalidResumeToken (260) for anything else this server cannot have issued.
     */
    private static long resumeTokenTime(Object token, String option) {
        if (!(token instanceof Document document)) {
            throw new MongoServerError(14, "TypeMismatch",
                "BSON field '$changeStream." + option + "' is the wrong type, expected type 'object'");
        }
        if (!(document.get("_data") instanceof String data)) {
            throw new MongoServerError(260, "InvalidResumeToken",
                "Invalid resume token: no string field '_data' in " + token + " (docshift test launcher)");
        }
        if (data.isEmpty() || !data.chars().allMatch(c -> Character.digit(c, 16) >= 0)) {
            throw new MongoServerError(9, "FailedToParse", "resume token string was not a valid hex string");
        }
        try {
            if (data.length() <= 16) {
                return Long.parseLong(data, 16);
            }
        } catch (NumberFormatException e) {
            // below
        }
        throw new MongoServerError(260, "InvalidResumeToken", "Invalid resume token " + token
            + ": not a token of this server (docshift test launcher: mongo-java-server's tokens are the"
            + " 16 hex digits of an oplog timestamp)");
    }

    private boolean isRegistered(Cursor cursor) {
        try {
            return cursorRegistry.getCursor(cursor.getId()) == cursor;
        } catch (CursorNotFoundException e) {
            return false;
        }
    }

    /** The {@code fullDocumentBeforeChange} option of a change stream. */
    private enum BeforeChange {
        OFF, WHEN_AVAILABLE, REQUIRED;

        static BeforeChange of(Object option) {
            if (option == null || "off".equals(option)) {
                return OFF;
            } else if ("whenAvailable".equals(option)) {
                return WHEN_AVAILABLE;
            } else if ("required".equals(option)) {
                return REQUIRED;
            }
            throw new MongoServerError(2, "BadValue", "Enumeration value '" + option
                + "' for field '$changeStream.fullDocumentBeforeChange' is not a valid value.");
        }
    }

    /** A change-stream cursor whose events are corrected as described on the class. */
    final class ChangeStreamCursor implements Cursor {

        private final Cursor delegate;
        private final Document ns;
        private final boolean updateLookup;
        private final BeforeChange beforeChange;
        /** The newest oplog timestamp this cursor has read up to (see {@link OplogHistory}). */
        private long scanned;

        ChangeStreamCursor(Cursor delegate, String namespace, boolean updateLookup, BeforeChange beforeChange,
                           long scanned) {
            this.delegate = delegate;
            int dot = namespace.indexOf('.');
            this.ns = new Document("db", namespace.substring(0, dot)).append("coll", namespace.substring(dot + 1));
            this.updateLookup = updateLookup;
            this.beforeChange = beforeChange;
            this.scanned = scanned;
        }

        @Override
        public long getId() {
            return delegate.getId();
        }

        @Override
        public boolean isEmpty() {
            return delegate.isEmpty();
        }

        @Override
        public List<Document> takeDocuments(int numberToReturn) {
            return history.reading(() -> {
                try {
                    history.checkNothingLostAfter(scanned);
                } catch (MongoServerError e) {
                    cursorRegistry.remove(getId()); // as MongoDB: the cursor is dead
                    throw e;
                }
                long newest = history.newestWritten(); // every entry up to here is in this scan
                List<Document> events = takeAndCorrect(numberToReturn);
                if (numberToReturn > 0 && events.size() >= numberToReturn) {
                    // a full batch: the scan stopped at its last event
                    scanned = Math.max(scanned, positionOf(events.get(events.size() - 1)));
                } else {
                    scanned = Math.max(scanned, newest);
                }
                return events;
            });
        }

        private List<Document> takeAndCorrect(int numberToReturn) {
            List<Document> events = delegate.takeDocuments(numberToReturn);
            Set<String> withEntry = beforeChange == BeforeChange.OFF ? Set.of("update") : Set.of("update", "delete");
            Map<Long, Document> oplogEntries = oplogEntriesOf(events, withEntry);
            List<Document> corrected = new ArrayList<>(events.size());
            for (Document event : events) {
                Document result = correct(event, oplogEntries);
                if (beforeChange != BeforeChange.OFF && result.get("operationType") instanceof String type
                    && Set.of("update", "replace", "delete").contains(type)) {
                    addBeforeChange(result, oplogEntries.get(timestampOf(event)));
                }
                corrected.add(result);
            }
            return corrected;
        }

        private void addBeforeChange(Document event, Document oplogEntry) {
            Document before = oplogEntry == null ? null : PreImages.of(oplogEntry);
            if (before == null && beforeChange == BeforeChange.REQUIRED) {
                // MongoDB fails the getMore and kills the cursor; the driver does not resume on it
                cursorRegistry.remove(getId());
                throw new MongoServerError(47, "NoMatchingDocument", "Change stream was configured to require a"
                    + " pre-image for all update, delete and replace events, but the pre-image was not found"
                    + " for event: " + event.get("_id") + " (docshift test launcher: the collection had no"
                    + " changeStreamPreAndPostImages enabled at the time of the write)");
            }
            event.put("fullDocumentBeforeChange", before);
        }

        private Document correct(Document event, Map<Long, Document> oplogEntries) {
            Document result = new Document();
            for (Map.Entry<String, Object> field : event.entrySet()) {
                result.put(field.getKey(), field.getValue());
                if (field.getKey().equals("operationType")) {
                    result.put("ns", ns.clone());
                }
            }
            if (!"update".equals(event.get("operationType"))) {
                return result;
            }
            Document oplogEntry = oplogEntries.get(timestampOf(event));
            if (oplogEntry == null) {
                return result;
            }
            Object id = ((Document) oplogEntry.get("o2")).get("_id");
            Document change = (Document) oplogEntry.get("o");
            result.put("documentKey", new Document("_id", id));

            if (!isOperatorUpdate(change)) {
                Document replacement = new Document("_id", id);
                change.forEach((key, value) -> {
                    if (!key.equals("_id")) {
                        replacement.put(key, value);
                    }
                });
                result.put("operationType", "replace");
                result.put("fullDocument", replacement);
                return result;
            }

            Document lookedUp = null;
            if (updateLookup && event.get("fullDocument") instanceof Document fullDocument
                && fullDocument.containsKey("_id")) {
                lookedUp = fullDocument; // mongo-java-server falls back to a delta without _id
            }
            if (updateLookup) {
                result.put("fullDocument", lookedUp);
            } else {
                result.remove("fullDocument");
            }
            result.put("updateDescription", updateDescription(change, lookedUp));
            return result;
        }
    }

    private static boolean isOperatorUpdate(Document change) {
        return !change.isEmpty() && change.keySet().iterator().next().startsWith("$");
    }

    private static Document updateDescription(Document change, Document lookedUp) {
        Document updatedFields = new Document();
        List<String> removedFields = new ArrayList<>();
        change.forEach((operator, argument) -> {
            if (!(argument instanceof Document fields)) {
                return;
            }
            switch (operator) {
                case "$set" -> updatedFields.putAll(fields);
                case "$unset" -> removedFields.addAll(fields.keySet());
                default -> {
                    if (lookedUp != null) {
                        for (String path : fields.keySet()) {
                            Object value = valueAt(lookedUp, path);
                            if (value != null) {
                                updatedFields.put(path, value);
                            }
                        }
                    }
                }
            }
        });
        return new Document("updatedFields", updatedFields)
            .append("removedFields", removedFields)
            .append("truncatedArrays", List.of());
    }

    private static Object valueAt(Document document, String path) {
        Object current = document;
        for (String part : path.split("\\.")) {
            if (!(current instanceof Document level)) {
                return null;
            }
            current = level.get(part);
        }
        return current;
    }

    /** The oplog timestamp of an event: its clusterTime, else its resume token's. */
    private static long positionOf(Document event) {
        if (event.get("clusterTime") instanceof BsonTimestamp ts) {
            return ts.getValue();
        }
        if (event.get("_id") instanceof Document id && id.get("_data") instanceof String data) {
            try {
                return Long.parseLong(data, 16);
            } catch (NumberFormatException e) {
                return Long.MIN_VALUE;
            }
        }
        return Long.MIN_VALUE;
    }

    private static long timestampOf(Document event) {
        return ((BsonTimestamp) event.get("clusterTime")).getValue();
    }

    /** Oplog entries (by timestamp) of the events of the given types in a batch: one scan of the oplog. */
    private Map<Long, Document> oplogEntriesOf(List<Document> events, Set<String> operationTypes) {
        Set<Long> wanted = new HashSet<>();
        for (Document event : events) {
            if (operationTypes.contains(event.get("operationType")) && event.get("clusterTime") instanceof BsonTimestamp) {
                wanted.add(timestampOf(event));
            }
        }
        Map<Long, Document> entries = new HashMap<>();
        if (wanted.isEmpty()) {
            return entries;
        }
        oplogCollection.queryAllAsStream()
            .filter(entry -> entry.get("ts") instanceof BsonTimestamp ts && wanted.contains(ts.getValue()))
            .forEach(entry -> entries.put(((BsonTimestamp) entry.get("ts")).getValue(), entry));
        return entries;
    }
}
