package io.docshift.testenv.mongo;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.LongFunction;
import java.util.function.Supplier;

import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;

/**
 * How much history the oplog still holds, for the {@value #COMMAND} admin command, which lets
 * tests simulate a rolled-over oplog (mongo-java-server keeps every oplog entry forever).
 *
 * <p>{@code {docshiftTruncateOplog: 1}} deletes every oplog entry, {@code {docshiftTruncateOplog: 1,
 * before: Timestamp(t, i)}} those older than the given timestamp. Afterwards the oplog covers
 * the timestamps from the <em>truncation point</em> ({@link #oldestCovered}) on: {@code before},
 * or, if that lies beyond every entry written so far (or is not given), just past the newest
 * deleted entry. As on MongoDB:
 *
 * <ul>
 *   <li>Opening a change stream with {@code resumeAfter}/{@code startAfter} a token whose timestamp
 *       is older than the truncation point, or with {@code startAtOperationTime} older than it,
 *       fails with ChangeStreamHistoryLost (286). Without a resume point nothing is checked.</li>
 *   <li>A {@code getMore} (or the first batch) of a change stream that had not yet read an entry
 *       that was deleted (an entry newer than what the cursor had scanned) fails with
 *       ChangeStreamHistoryLost and the cursor is closed. A cursor that had read everything
 *       before the truncation keeps working.</li>
 * </ul>
 *
 * <p>Truncation takes the write lock, change-stream batches (which scan the oplog) the read
 * lock, so a batch never sees half a truncation.
 */
final class OplogHistory {

    static final String COMMAND = "docshiftTruncateOplog";

    static final int CHANGE_STREAM_HISTORY_LOST = 286;

    private final ReadWriteLock lock = new ReentrantReadWriteLock();
    private final AtomicLong newestWritten = new AtomicLong(); // timestamp value; 0: none yet
    private volatile long oldestCovered; // the truncation point; 0: never truncated
    private volatile long newestDeleted; // the newest entry a truncation deleted; 0: none

    /** An oplog entry with timestamp {@code ts} was written. */
    void written(Object ts) {
        if (ts instanceof BsonTimestamp timestamp) {
            newestWritten.accumulateAndGet(timestamp.getValue(), Math::max);
        }
    }

    long newestWritten() {
        return newestWritten.get();
    }

    /** Runs {@code read} (a change-stream batch) under the read lock. */
    <T> T reading(Supplier<T> read) {
        lock.readLock().lock();
        try {
            return read.get();
        } finally {
            lock.readLock().unlock();
        }
    }

    /** What the oplog removed: how many entries, the newest of them, the oldest one left. */
    record Removed(int count, long newest, BsonTimestamp oldestLeft) {
    }

    /** Deletes oplog entries older than {@code before} (all if null) with {@code remover}. */
    Document truncate(BsonTimestamp before, LongFunction<Removed> remover) {
        long cutoff = before == null ? Long.MAX_VALUE : before.getValue();
        lock.writeLock().lock();
        try {
            Removed removed = remover.apply(cutoff);
            long newest = newestWritten.get();
            if (newest > 0) {
                long point = Math.min(cutoff, newest + 1);
                if (point > oldestCovered) {
                    oldestCovered = point;
                }
            }
            if (removed.newest() > newestDeleted) {
                newestDeleted = removed.newest();
            }
            return new Document("removed", removed.count())
                .append("truncationPoint", oldestCovered == 0 ? null : new BsonTimestamp(oldestCovered))
                .append("oldestEntry", removed.oldestLeft())
                .append("ok", 1.0);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * Fails with ChangeStreamHistoryLost if a change stream cannot start at {@code resumePoint}:
     * the timestamp of a resume token ({@code resumeAfter}/{@code startAfter}) or
     * {@code startAtOperationTime}; either must be at or after the truncation point.
     */
    void checkResumePoint(long resumePoint) {
        if (oldestCovered != 0 && resumePoint < oldestCovered) {
            throw historyLost("the resume point " + format(resumePoint) + " is before the oplog's truncation point "
                + format(oldestCovered) + " (" + COMMAND + " or the oplog's cap)");
        }
    }

    /**
     * Fails with ChangeStreamHistoryLost if an entry newer than {@code scanned} (the newest oplog
     * timestamp a change-stream cursor has read up to) was deleted before the cursor read it.
     */
    void checkNothingLostAfter(long scanned) {
        if (newestDeleted > scanned) {
            throw historyLost("the oplog was truncated (" + COMMAND + " or the oplog's cap) up to " + format(newestDeleted)
                + ", past this change stream's position " + format(scanned));
        }
    }

    static String format(long timestamp) {
        BsonTimestamp ts = new BsonTimestamp(timestamp);
        return "Timestamp(" + Integer.toUnsignedString(ts.getTime()) + ", " + Integer.toUnsignedString(ts.getInc()) + ")";
    }

    private static MongoServerError historyLost(String detail) {
        return new MongoServerError(CHANGE_STREAM_HISTORY_LOST, "ChangeStreamHistoryLost",
            "Resume of change stream was not possible, as the resume point may no longer be in the oplog."
                + " (docshift test launcher: " + detail + ")");
    }
}
