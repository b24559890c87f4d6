"""Free text: survey comments, service-center conversation turns, reminders and patient messages.

The sentences are written for this project. Survey comments are grouped by polarity (negative, mixed
or neutral, positive) and assembled from one to three sentences with slots ({staff}, {wait}, {place},
{doc}) so that a text classifier meets thousands of distinct comments whose polarity follows the
rating. Conversation turns are grouped by department, patient mood and agent manner.
"""

from __future__ import annotations

import random

STAFF = (
    "nurse",
    "doctor",
    "front desk staff",
    "receptionist",
    "medical assistant",
    "lab technician",
    "physician assistant",
    "check-in clerk",
    "night nurse",
    "discharge nurse",
)
WAITS = (
    "20 minutes",
    "half an hour",
    "45 minutes",
    "an hour",
    "over an hour",
    "almost two hours",
    "three hours",
)
PLACES = ("waiting room", "exam room", "clinic", "emergency department", "hospital", "lab", "imaging center")

NEGATIVE = (
    "Waited {wait} past my appointment time and nobody explained the delay.",
    "The {staff} was rude when I asked a simple question.",
    "{doc} barely looked up from the computer and rushed me out.",
    "I was given conflicting instructions about my medication and left more confused than when I came in.",
    "Nobody called me back with my test results even though I was promised a call.",
    "I was charged for a visit my insurance should have covered, and no one will fix it.",
    "The {place} was dirty and the restroom was out of order.",
    "I felt dismissed, like my pain did not matter to anyone.",
    "Spent {wait} in the {place} with no updates at all.",
    "Parking was a nightmare and the signs inside made no sense.",
    "They lost my paperwork and I had to fill everything out twice.",
    "I asked for an interpreter and waited {wait} for one.",
    "Discharge was chaotic; I went home without knowing which pills to stop.",
    "The {staff} talked about me as if I was not in the room.",
    "My prescription was never sent to the pharmacy, so I went three days without it.",
    "Terrible experience overall, I will be looking for a new provider.",
    "I was in severe pain and nobody checked on me for hours.",
    "The online check-in failed and the front desk blamed me for it.",
    "Scheduling a follow-up took four phone calls and I still do not have a date.",
    "I was treated like a number, not a person.",
    "They cancelled my appointment the morning of and did not offer another time.",
    "The visit felt pointless; nothing was explained and nothing changed.",
    "Nobody washed their hands before examining me, which worried me.",
    "I got a bill for a test I never had.",
    "Unacceptable wait for an emergency, I almost left without being seen.",
    "Staff seemed overwhelmed and annoyed by every question.",
    "The {staff} could not find a vein and kept trying instead of asking a colleague.",
    "I was told {doc} would come back and that never happened.",
    "The noise on the floor made it impossible to sleep for three nights.",
    "Meals were cold and arrived hours late.",
    "No one told my family where I had been moved.",
    "I had to repeat my whole history to five different people.",
    "Rude, disorganized and slow.",
    "I came in for one problem and left with it unresolved.",
    "The {staff} rolled their eyes when I said I could not afford the medication.",
    "I was kept on hold for {wait} when I called about my results.",
    "I will not be coming back.",
    "My concerns about side effects were brushed off.",
    "The room was freezing and nobody brought the blanket I asked for.",
    "Checked in on time and still waited {wait} to be called back.",
    "The portal message I sent a week ago is still unanswered.",
    "Felt rushed and unheard.",
    "The lab drew the wrong tests and I had to come back.",
    "Very disappointed with how my mother was treated.",
    "The {staff} handed me someone else's discharge papers.",
    "Nobody seemed to know who was in charge of my care.",
    "I was sent home and ended up back in the {place} two days later.",
    "The explanation of my diagnosis was confusing and rushed.",
    "Worst visit I have had in years.",
    "I asked three times for pain medication before anyone listened.",
)
MIXED = (
    "{doc} was nice but the wait was {wait}.",
    "The care was fine, the billing office less so.",
    "Good nurses, but the check-in process is slow and confusing.",
    "It was an ordinary visit, nothing special either way.",
    "{doc} was thorough, though the front desk could be friendlier.",
    "Got what I needed eventually.",
    "Average experience. The parking situation needs work.",
    "The visit itself was quick; getting the appointment took weeks.",
    "Some staff were great, others seemed not to care.",
    "Clean facility, long wait.",
    "I am not sure the new medication is right for me, we will see.",
    "No complaints about the care, but the cost was higher than expected.",
    "Okay visit. It would be nice to get results faster.",
    "The {place} was crowded, which I understand, but communication could be better.",
    "Fine.",
    "It was okay.",
    "Decent, but I had to ask twice for a copy of my results.",
    "Mixed feelings: great doctor, frustrating scheduling.",
    "Everything was as expected.",
    "Nothing to add.",
    "Service was adequate; the television in the waiting room was too loud.",
    "The {staff} was kind, the doctor seemed rushed.",
    "It took a while but they sorted it out.",
    "A reasonable visit. Signs in the building are confusing.",
    "Good care, but I still do not understand my bill.",
    "The appointment started late but {doc} took time with me.",
    "Not bad, not great.",
    "They answered my questions, although the visit felt short.",
    "The video link failed at first; once connected the visit was fine.",
    "Standard checkup, in and out.",
    "The {staff} was helpful, the phone line much less so.",
)
POSITIVE = (
    "{doc} listened carefully and explained everything in plain language.",
    "The {staff} was kind, patient and made me feel at ease.",
    "In and out in under an hour, very efficient.",
    "Excellent care from start to finish.",
    "The nurses in the {place} were wonderful to my dad.",
    "Everyone was friendly and professional.",
    "I felt heard for the first time in years.",
    "They got me in the same day, which I really appreciated.",
    "Clear instructions at discharge and a follow-up call the next day.",
    "Thank you to the whole team, you made a scary day much easier.",
    "Check-in was quick and the staff were welcoming.",
    "{doc} took the time to answer all of my questions.",
    "Great experience, I would recommend this clinic to my family.",
    "My results came back quickly and were explained well.",
    "The interpreter made it easy to understand my treatment.",
    "Very clean and well organized.",
    "Compassionate care when I needed it most.",
    "The pharmacist caught a drug interaction, I am so grateful.",
    "Short wait, thorough exam, friendly staff.",
    "They treated my son with so much patience.",
    "The reminders before the visit were helpful.",
    "Best hospital stay I have had, the {staff} was an angel.",
    "The appointment started on time, which never happens elsewhere.",
    "I appreciated how respectful everyone was.",
    "Smooth visit, no complaints at all.",
    "The {staff} went above and beyond to help me.",
    "Professional, caring and efficient.",
    "Really happy with the care I received.",
    "The team coordinated everything with my specialist so I did not have to.",
    "They made the mammogram much less stressful than I expected.",
    "Online scheduling was easy and quick.",
    "My blood pressure is finally under control thanks to this team.",
    "Fantastic staff.",
    "Excellent!",
    "Everything went perfectly.",
    "Thank you for taking such good care of me.",
    "The emergency team was fast and reassuring.",
    "Friendly faces from the parking lot to the exam room.",
    "{doc} explained my diabetes numbers in a way that finally made sense.",
    "I felt safe and well cared for.",
)


def survey_comment(rng: random.Random, rating: int, doc: str) -> str:
    """A comment whose polarity follows the 0-10 rating, with some mixed comments at every level."""
    u = rng.random()
    if rating <= 3:
        pool = NEGATIVE if u < 0.92 else MIXED
    elif rating == 4:
        pool = NEGATIVE if u < 0.7 else MIXED
    elif rating <= 6:
        pool = MIXED if u < 0.7 else NEGATIVE if u < 0.85 else POSITIVE
    elif rating <= 8:
        pool = POSITIVE if u < 0.65 else MIXED
    else:
        pool = POSITIVE if u < 0.95 else MIXED
    n = 1 if rng.random() < 0.6 else 2 if rng.random() < 0.88 else 3
    picked = rng.sample(pool, n)
    slots = {"staff": rng.choice(STAFF), "wait": rng.choice(WAITS), "place": rng.choice(PLACES), "doc": doc}
    return " ".join(s.format(**slots) for s in picked)


# --- service center ---------------------------------------------------------------------------------
OPENERS = {
    "scheduling": {
        "calm": (
            "Hi, I need to schedule my annual physical.",
            "I would like to reschedule my appointment next week.",
            "Can I book a follow-up with my doctor?",
            "I need to cancel my appointment on Thursday.",
            "Is there anything available for a mammogram this month?",
            "I got a letter saying I am due for a colonoscopy and want to set it up.",
            "Can I move my visit to the afternoon?",
        ),
        "frustrated": (
            "I have been trying to get an appointment for three weeks and nothing is ever available.",
            "This is the second time my appointment was moved without anyone asking me.",
            "I was told someone would call me back to schedule and nobody did.",
            "The online scheduler keeps giving me an error.",
        ),
        "angry": (
            "I drove forty minutes and was told my appointment had been cancelled. Nobody told me!",
            "This is ridiculous, I have been on hold for half an hour just to book a visit.",
            "Third time calling. Can somebody actually book me in?",
        ),
    },
    "billing": {
        "calm": (
            "I have a question about a bill I received.",
            "Can I set up a payment plan?",
            "I think my insurance information is out of date.",
            "I need an itemized statement for my last visit.",
            "How do I pay my bill online?",
        ),
        "frustrated": (
            "I was billed twice for the same visit.",
            "My insurance should have covered this and now I am getting overdue notices.",
            "I keep getting statements for a balance I already paid.",
            "Nobody can explain what this charge is for.",
        ),
        "angry": (
            "This is the third time I am calling about the same wrong charge!",
            "You sent my account to collections without any warning, this is outrageous.",
            "I am not paying for something I never received. Fix it.",
        ),
    },
    "pharmacy": {
        "calm": (
            "I need a refill on my {med}.",
            "Can you send my prescription to a different pharmacy?",
            "Is there a generic version of my medication?",
            "How many refills do I have left on my {med}?",
        ),
        "frustrated": (
            "My pharmacy says they never got the prescription for my {med}.",
            "The prior authorization has been pending for two weeks.",
            "I ran out of my {med} yesterday and cannot get a refill.",
            "The price of my {med} doubled and nobody told me why.",
        ),
        "angry": (
            "I have been without my {med} for three days because nobody sent the refill!",
            "Every single month the refill is late. This is dangerous.",
        ),
    },
    "nurse_line": {
        "calm": (
            "I have had a low fever since yesterday, should I come in?",
            "My blood pressure readings at home have been higher than usual.",
            "I have a question about side effects of my new medication.",
            "My son has a small rash after his vaccines, is that normal?",
            "My sugar was 250 this morning, what should I do?",
        ),
        "frustrated": (
            "I called this morning and still have not heard back from a nurse.",
            "My sugar readings are all over the place and nobody is helping me.",
            "I was told to watch my symptoms but they are getting worse.",
        ),
        "angry": (
            "I have left three messages about my chest pain and nobody called back.",
            "I am sick and I have been waiting all day for a call. This is unacceptable.",
        ),
    },
    "referrals": {
        "calm": (
            "I am checking on the status of my referral to cardiology.",
            "My doctor said she would refer me to a specialist, has that gone through?",
            "Do I need a referral for physical therapy?",
            "Can you send my referral to a different endocrinologist?",
        ),
        "frustrated": (
            "My referral was supposedly sent a month ago and the specialist has nothing.",
            "My insurance denied the referral and nobody told me why.",
            "I keep getting bounced between your office and the specialist.",
        ),
        "angry": (
            "I have been waiting two months for a referral, this is putting my health at risk.",
            "Nobody in this system talks to each other. Where is my referral?",
        ),
    },
}
PATIENT_DETAILS = {
    "calm": (
        "Mornings work better for me.",
        "Anything after 3 pm would be great.",
        "It was for the visit on the 12th.",
        "I use the pharmacy on Main Street.",
        "Sure, take your time.",
        "Okay, that makes sense.",
        "I can do that.",
        "Could you also check whether my insurance card is on file?",
    ),
    "frustrated": (
        "That is more than a month away, I cannot wait that long.",
        "Why is it always this hard?",
        "I already explained all of this last time.",
        "I have been dealing with this for weeks.",
        "Can you please just check again?",
        "Nobody ever writes anything down, do they.",
    ),
    "angry": (
        "I want to speak to a supervisor.",
        "This is completely unacceptable.",
        "I am going to file a complaint.",
        "Do you people even care?",
        "Stop reading me a script and fix it.",
    ),
}
AGENT_RESPONSES = {
    "warm": (
        "I am really sorry about the trouble, let me see what I can do for you.",
        "I completely understand, that is frustrating. Let me look into it right now.",
        "Thank you for your patience, I know this has taken too long.",
        "I hear you, and I want to get this sorted out for you today.",
        "Let me pull up your account so we can fix this together.",
    ),
    "neutral": (
        "Let me check that for you.",
        "One moment while I look at your account.",
        "Okay, I am looking at it now.",
        "Can you confirm the date of the visit?",
        "I see the record here.",
    ),
    "curt": (
        "That is our policy.",
        "There is nothing available before then.",
        "You will have to call back tomorrow.",
        "I cannot change that.",
        "Like I said, it is in process.",
    ),
}
RESOLUTIONS = {
    "scheduling": (
        (
            "You are booked for next Tuesday at 10:30. You will get a reminder two days before.",
            "I found an opening this Friday afternoon and booked it for you.",
            "Your appointment is cancelled and I have sent you a confirmation.",
        ),
        (
            "I have added you to the waitlist; someone will call if a slot opens up.",
            "I am not able to book that here, you will need to call the imaging center directly.",
        ),
    ),
    "billing": (
        (
            "I see the duplicate charge and I have removed it. You will receive a corrected statement.",
            "I set up a monthly payment plan with no fees.",
            "I updated your insurance and resubmitted the claim.",
        ),
        (
            "I need to send this to our billing review team, which can take up to 30 days.",
            "The charge looks correct on our side, you may want to contact your insurer.",
        ),
    ),
    "pharmacy": (
        (
            "I sent the refill to your pharmacy; it should be ready this afternoon.",
            "The prior authorization was approved this morning, you can pick it up today.",
            "I moved your prescription to the new pharmacy.",
        ),
        (
            "Your doctor has to approve this refill, I sent a message to the care team.",
            "The prior authorization is still with your insurance, we are waiting on them.",
        ),
    ),
    "nurse_line": (
        (
            "Based on what you describe, it is best to be seen today. I booked you at urgent care at 4 pm.",
            "That can be a normal reaction. Keep an eye on it and call us if it spreads.",
            "Please keep taking readings twice a day and I will let your doctor know.",
        ),
        (
            "I will pass your message to the doctor, but I cannot say when they will call back.",
            "If the pain gets worse or you feel short of breath, please go to the emergency department.",
        ),
    ),
    "referrals": (
        (
            "The referral went through and the cardiology office will call you this week.",
            "I resent the referral and confirmed the specialist received it.",
        ),
        (
            "The referral is still pending insurance approval.",
            "I do not see a referral on file, your doctor will need to place a new one.",
        ),
    ),
}
PATIENT_CLOSINGS = {
    "positive": (
        "Thank you so much, that really helps.",
        "Perfect, thanks for your help!",
        "Great, I appreciate it.",
        "Wonderful, you made my day.",
        "Thanks, that was easy.",
    ),
    "neutral": ("Okay.", "Alright, thanks.", "Fine, I will wait for the call.", "Got it."),
    "negative": (
        "This is unacceptable, I am going to file a complaint.",
        "Fine. I am not happy about it.",
        "Whatever, I will figure it out myself.",
        "I expected much better from you.",
        "This was a waste of my time.",
        "Unbelievable.",
    ),
}
AGENT_CLOSINGS = {
    "warm": (
        "Is there anything else I can help you with today?",
        "Thank you for your patience. Take care and have a good day.",
    ),
    "neutral": ("Is there anything else?", "Thank you for contacting patient services."),
    "curt": ("Anything else?", "Okay. Bye."),
}
BOT_GREETING = (
    "Hi! I am the virtual assistant. I can help with appointments, bills, refills, referrals "
    "and general questions. What do you need today?"
)
BOT_ANSWERS = {
    "scheduling": "I can help with that. The next available times are shown in the patient portal under "
    "Appointments. Would you like me to send you the link?",
    "billing": "You can view and pay your bill in the patient portal under Billing. Payment plans are "
    "available for balances over 100 dollars.",
    "pharmacy": "I have sent a refill request to your care team. Refills can take up to 2 business days.",
    "nurse_line": "For medical questions, please call the nurse line. If this is an emergency, call 911.",
    "referrals": "Referral status is available in the patient portal under Referrals.",
}
BOT_CALM_REPLIES = ("ok thanks", "That works, thank you.", "great", "Thanks!", "ok")
BOT_FRUSTRATED_REPLIES = (
    "That is not what I asked.",
    "I already tried that, it does not work.",
    "agent please",
    "I want to talk to a real person.",
    "representative",
    "This bot is useless.",
)
BOT_HANDOFF = "I am connecting you with a member of our team. Please hold on."
BOT_CLOSING = "Glad I could help. Have a great day!"
AGENT_GREETING = {
    "voice": "Thank you for calling patient services, this is {agent}. How can I help you?",
    "chat": "Hi, you are chatting with {agent} from patient services. How can I help today?",
    "handoff": "Hi, this is {agent}, I am taking over from the assistant. I see you need help with {topic}.",
}
TOPICS = {
    "scheduling": "an appointment",
    "billing": "a bill",
    "pharmacy": "a prescription",
    "nurse_line": "a medical question",
    "referrals": "a referral",
}
AGENT_FIRST_NAMES = (
    "Alex",
    "Jordan",
    "Sam",
    "Taylor",
    "Morgan",
    "Casey",
    "Riley",
    "Jamie",
    "Avery",
    "Quinn",
    "Dana",
    "Robin",
    "Kendall",
    "Rowan",
    "Skyler",
    "Drew",
    "Elena",
    "Marcus",
    "Priya",
    "Tomas",
    "Keisha",
    "Ming",
    "Omar",
    "Grace",
)

# --- Communication ----------------------------------------------------------------------------------
REMINDER = (
    "Reminder: you have an appointment with {doc} on {date} at {time}. Reply C to confirm or call "
    "us to reschedule."
)
SCREENING_REMINDERS = {
    "mammography": "Our records show you are due for a screening mammogram. Please call us or use the "
    "patient portal to schedule.",
    "colonoscopy": "You are due for colorectal cancer screening. Ask us about a colonoscopy or an at-home "
    "stool test kit.",
    "retinal_exam": "People living with diabetes should have a yearly eye exam. Our records show yours is "
    "due.",
    "cervical_cytology": "You are due for cervical cancer screening. Please schedule a visit with your "
    "provider.",
}
PATIENT_MESSAGES = (
    "Can I get a refill of my {med}?",
    "My home blood pressure readings have been around 150 over 95, should I change anything?",
    "I need a note for work for my visit yesterday.",
    "Could you send me my lab results?",
    "Thank you for the great care last week!",
    "I am still having side effects from the new medication.",
    "Can I switch my appointment to a video visit?",
    "My sugars have been higher in the mornings, is that expected?",
    "Is it safe to take ibuprofen with my {med}?",
    "I have not received the referral paperwork yet.",
    "The pharmacy says my prescription needs a prior authorization.",
    "Do I need to fast before my blood test?",
)
MEDS_FOR_TEXT = (
    "blood pressure medication",
    "metformin",
    "inhaler",
    "cholesterol medication",
    "insulin",
    "lisinopril",
    "atorvastatin",
)
DEVICE_NOTES = (
    "",
    "",
    "",
    "",
    "",
    "",
    "after coffee",
    "felt dizzy",
    "before meds",
    "after walk",
    "rechecked",
    "stressful day",
    "after dinner",
    "woke up early",
    "forgot meds yesterday",
)
