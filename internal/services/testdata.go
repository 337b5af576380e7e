package services

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// MixedID gives document i an _id of one of six BSON types: ObjectId,
// int32, int64, double, string and a composite document.
func MixedID(i int) any {
	switch i % 6 {
	case 0:
		return bson.NewObjectIDFromTimestamp(time.Unix(int64(1_600_000_000+i), 0))
	case 1:
		return int32(i)
	case 2:
		return int64(10_000_000_000 + i)
	case 3:
		return float64(i) + 0.5
	case 4:
		return fmt.Sprintf("s%07d", i)
	}
	return bson.D{{Key: "a", Value: int32(i)}, {Key: "b", Value: "x"}}
}

// ResetPeakRSS resets the kernel's peak RSS (VmHWM) of this process, for a
// benchmark that reports the peak of one phase.
func ResetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// PeakRSSMB returns this process's peak RSS (VmHWM) in MiB, 0 if unknown.
func PeakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
