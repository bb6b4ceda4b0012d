package backend

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// MaxVolumeNameLen bounds volume names: LVM allows 127 bytes; the lvm backend
// checks the tighter device-mapper limit that also depends on the VG name.
const MaxVolumeNameLen = 127

// MaxTagLen is LVM's limit for one tag.
const MaxTagLen = 1024

// reservedLVSubstrings are the suffixes LVM keeps for its internal volumes
// (lib/metadata/lv_manip.c, apply_lvname_restrictions); lvcreate refuses them.
var reservedLVSubstrings = []string{
	"_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_imeta", "_iorig",
	"_mimage", "_mlog", "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta",
	"_vdata", "_vorigin", "_wcorig",
}

// ValidateVolumeName accepts the names LVM accepts for logical volumes
// ([A-Za-z0-9+_.-], not "snapshot*"/"pvmove*" nor LVM's internal suffixes)
// and, stricter than LVM, refuses a leading '-' or '.' so that a name can
// never be read as a command option or a hidden or relative file name.
func ValidateVolumeName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: volume name is empty", ErrInvalidArgument)
	}
	if len(name) > MaxVolumeNameLen {
		return fmt.Errorf("%w: volume name %q is longer than %d characters", ErrInvalidArgument, name, MaxVolumeNameLen)
	}
	if name[0] == '-' || name[0] == '.' {
		return fmt.Errorf("%w: volume name %q must not start with '-' or '.'", ErrInvalidArgument, name)
	}
	for _, r := range name {
		if !isNameChar(r) {
			return fmt.Errorf("%w: volume name %q has %q: use letters, digits and + _ . -", ErrInvalidArgument, name, r)
		}
	}
	if strings.HasPrefix(name, "snapshot") || strings.HasPrefix(name, "pvmove") {
		return fmt.Errorf("%w: volume name %q starts with a prefix LVM reserves (snapshot, pvmove)", ErrInvalidArgument, name)
	}
	for _, s := range reservedLVSubstrings {
		if strings.Contains(name, s) {
			return fmt.Errorf("%w: volume name %q contains %q, which LVM reserves", ErrInvalidArgument, name, s)
		}
	}
	return nil
}

// ValidateTag accepts LVM tags: 1..1024 of [A-Za-z0-9_+.-/=!:&#], not
// starting with '-' (it would read as an option).
func ValidateTag(tag string) error {
	if tag == "" || len(tag) > MaxTagLen {
		return fmt.Errorf("%w: tag %q must have 1 to %d characters", ErrInvalidArgument, tag, MaxTagLen)
	}
	if tag[0] == '-' {
		return fmt.Errorf("%w: tag %q must not start with '-'", ErrInvalidArgument, tag)
	}
	for _, r := range tag {
		if !isNameChar(r) && !strings.ContainsRune("/=!:&#", r) {
			return fmt.Errorf("%w: tag %q has %q: use letters, digits and _ + . - / = ! : & #", ErrInvalidArgument, tag, r)
		}
	}
	return nil
}

// NormalizeTags sorts tags and drops duplicates, so that a volume's tags
// compare equal whichever order they were given in.
func NormalizeTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	out := slices.Clone(tags)
	slices.Sort(out)
	return slices.Compact(out)
}

// ValidateTags validates every tag.
func ValidateTags(tags []string) error {
	for _, t := range tags {
		if err := ValidateTag(t); err != nil {
			return err
		}
	}
	return nil
}

func isNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '+' || r == '_' || r == '.' || r == '-'
}

// RoundUp rounds bytes up to a multiple of unit (an extent, or an extent times
// the stripe count). It refuses sizes that are not positive or would overflow.
func RoundUp(bytes, unit int64) (int64, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("%w: size %d must be positive", ErrInvalidArgument, bytes)
	}
	if unit <= 1 {
		return bytes, nil
	}
	if bytes > math.MaxInt64-unit {
		return 0, fmt.Errorf("%w: size %d is too large", ErrInvalidArgument, bytes)
	}
	return (bytes + unit - 1) / unit * unit, nil
}
